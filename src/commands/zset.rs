//! Sorted-set commands (Redis's t_zset.c).
//!
//! Every handler follows Redis 7.0's order of checks (option syntax, then
//! argument values, then the key), because the order decides which error
//! a client sees when several things are wrong at once. Options are parsed
//! into a struct first (`ZaddOptions`, `RangeRequest`, `SetOp`), then
//! applied. The encodings and their conversions live in `types::zset`.

pub(crate) mod score;

use std::collections::HashMap;

use super::lookup::{AnyKind, WrongType, ZSetKind};
use super::string::cstr;
use super::{err, flags::*, numkeys_keys, CommandSpec, Ctx};
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::keyspace::xorshift;
use crate::shard::Value;
use crate::types::listpack::Entry;
use crate::types::zset::{AddFlags, Added, Limits};
use crate::types::zset_tree::{LexBound, ScoreBound, ScoreRange};
use crate::types::ZSet;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    const READ_FAST: &[&str] = &["@read", "@sortedset", "@fast"];
    const READ_SLOW: &[&str] = &["@read", "@sortedset", "@slow"];
    const WRITE_FAST: &[&str] = &["@write", "@sortedset", "@fast"];
    const WRITE_SLOW: &[&str] = &["@write", "@sortedset", "@slow"];
    let z =
        |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("sorted-set");
    vec![
        z("zadd", -4, WRITE | DENYOOM | FAST, zadd)
            .acl(WRITE_FAST)
            .doc("1.2.0", "Add one or more members to a sorted set, or update its score if it already exists"),
        z("zincrby", 4, WRITE | DENYOOM | FAST, zincrby).acl(WRITE_FAST).doc("1.2.0", "Increment the score of a member in a sorted set"),
        z("zrem", -3, WRITE | FAST, zrem).acl(WRITE_FAST).doc("1.2.0", "Remove one or more members from a sorted set"),
        z("zremrangebyscore", 4, WRITE, zremrangebyscore).acl(WRITE_SLOW).doc("1.2.0", "Remove all members in a sorted set within the given scores"),
        z("zremrangebyrank", 4, WRITE, zremrangebyrank).acl(WRITE_SLOW).doc("2.0.0", "Remove all members in a sorted set within the given indexes"),
        z("zremrangebylex", 4, WRITE, zremrangebylex)
            .acl(WRITE_SLOW)
            .doc("2.8.9", "Remove all members in a sorted set between the given lexicographical range"),
        z("zunionstore", -4, WRITE | DENYOOM, zunionstore)
            .find_keys(dest_and_numkeys)
            .acl(WRITE_SLOW)
            .doc("2.0.0", "Add multiple sorted sets and store the resulting sorted set in a new key"),
        z("zinterstore", -4, WRITE | DENYOOM, zinterstore)
            .find_keys(dest_and_numkeys)
            .acl(WRITE_SLOW)
            .doc("2.0.0", "Intersect multiple sorted sets and store the resulting sorted set in a new key"),
        z("zdiffstore", -4, WRITE | DENYOOM, zdiffstore)
            .find_keys(dest_and_numkeys)
            .acl(WRITE_SLOW)
            .doc("6.2.0", "Subtract multiple sorted sets and store the resulting sorted set in a new key"),
        z("zunion", -3, READONLY, zunion).keys(0, 0, 0).find_keys(numkeys_at_1).acl(READ_SLOW).doc("6.2.0", "Add multiple sorted sets"),
        z("zinter", -3, READONLY, zinter).keys(0, 0, 0).find_keys(numkeys_at_1).acl(READ_SLOW).doc("6.2.0", "Intersect multiple sorted sets"),
        z("zintercard", -3, READONLY, zintercard)
            .keys(0, 0, 0)
            .find_keys(numkeys_at_1)
            .acl(READ_SLOW)
            .doc("7.0.0", "Intersect multiple sorted sets and return the cardinality of the result"),
        z("zdiff", -3, READONLY, zdiff).keys(0, 0, 0).find_keys(numkeys_at_1).acl(READ_SLOW).doc("6.2.0", "Subtract multiple sorted sets"),
        z("zrange", -4, READONLY, zrange).acl(READ_SLOW).doc("1.2.0", "Return a range of members in a sorted set"),
        z("zrangestore", -5, WRITE | DENYOOM, zrangestore)
            .keys(1, 2, 1)
            .acl(WRITE_SLOW)
            .doc("6.2.0", "Store a range of members from sorted set into another key"),
        z("zrangebyscore", -4, READONLY, zrangebyscore).acl(READ_SLOW).doc("1.0.5", "Return a range of members in a sorted set, by score"),
        z("zrevrangebyscore", -4, READONLY, zrevrangebyscore)
            .acl(READ_SLOW)
            .doc("2.2.0", "Return a range of members in a sorted set, by score, with scores ordered from high to low"),
        z("zrangebylex", -4, READONLY, zrangebylex).acl(READ_SLOW).doc("2.8.9", "Return a range of members in a sorted set, by lexicographical range"),
        z("zrevrangebylex", -4, READONLY, zrevrangebylex)
            .acl(READ_SLOW)
            .doc("2.8.9", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings."),
        z("zcount", 4, READONLY | FAST, zcount).acl(READ_FAST).doc("2.0.0", "Count the members in a sorted set with scores within the given values"),
        z("zlexcount", 4, READONLY | FAST, zlexcount)
            .acl(READ_FAST)
            .doc("2.8.9", "Count the number of members in a sorted set between a given lexicographical range"),
        z("zrevrange", -4, READONLY, zrevrange)
            .acl(READ_SLOW)
            .doc("1.2.0", "Return a range of members in a sorted set, by index, with scores ordered from high to low"),
        z("zcard", 2, READONLY | FAST, zcard).acl(READ_FAST).doc("1.2.0", "Get the number of members in a sorted set"),
        z("zscore", 3, READONLY | FAST, zscore).acl(READ_FAST).doc("1.2.0", "Get the score associated with the given member in a sorted set"),
        z("zmscore", -3, READONLY | FAST, zmscore).acl(READ_FAST).doc("6.2.0", "Get the score associated with the given members in a sorted set"),
        z("zrank", 3, READONLY | FAST, zrank).acl(READ_FAST).doc("2.0.0", "Determine the index of a member in a sorted set"),
        z("zrevrank", 3, READONLY | FAST, zrevrank)
            .acl(READ_FAST)
            .doc("2.0.0", "Determine the index of a member in a sorted set, with scores ordered from high to low"),
        z("zscan", -3, READONLY, zscan).acl(READ_SLOW).doc("2.8.0", "Incrementally iterate sorted sets elements and associated scores"),
        z("zpopmin", -2, WRITE | FAST, zpopmin).acl(WRITE_FAST).doc("5.0.0", "Remove and return members with the lowest scores in a sorted set"),
        z("zpopmax", -2, WRITE | FAST, zpopmax).acl(WRITE_FAST).doc("5.0.0", "Remove and return members with the highest scores in a sorted set"),
        z("zmpop", -4, WRITE, zmpop)
            .keys(0, 0, 0)
            .find_keys(numkeys_at_1)
            .acl(WRITE_SLOW)
            .doc("7.0.0", "Remove and return members with scores in a sorted set"),
        z("zrandmember", -2, READONLY, zrandmember).acl(READ_SLOW).doc("6.2.0", "Get one or multiple random elements from a sorted set"),
    ]
}

/// Keys of ZUNION, ZINTER, ZDIFF, ZINTERCARD, ZMPOP: `numkeys key...`.
fn numkeys_at_1(args: &[&[u8]], out: &mut Vec<usize>) {
    numkeys_keys(args, 1, out);
}

/// Keys of ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: `destination numkeys key...`.
fn dest_and_numkeys(args: &[&[u8]], out: &mut Vec<usize>) {
    if args.len() > 1 {
        out.push(1);
    }
    numkeys_keys(args, 2, out);
}

const NAN_ERROR: &str = "ERR resulting score is not a number (NaN)";
const SCORE_RANGE_ERROR: &str = "ERR min or max is not a float";
const LEX_RANGE_ERROR: &str = "ERR min or max not valid string range item";

pub(crate) fn limits(ctx: &Ctx) -> Limits {
    let e = &ctx.config().encodings;
    Limits { entries: e.zset_max_listpack_entries, value: e.zset_max_listpack_value }
}

/// The sorted set of an entry a `ZSetKind` lookup returned.
fn zset_of(v: &mut Value) -> &mut ZSet {
    match v {
        Value::ZSet(z) => z,
        _ => unreachable!("a ZSetKind lookup returned a {}", v.type_name()),
    }
}

fn bulk_entry(r: &mut Reply, e: Entry<'_>) {
    match e {
        Entry::Str(s) => r.bulk(s),
        Entry::Int(v) => r.bulk_int(v),
    }
}

/// The array header of `n` elements that carry a score when `withscores`:
/// Redis 7.0 sends them flat (member, score, ...) in RESP2 and as
/// [member, score] pairs in RESP3.
fn scored_array(r: &mut Reply, n: usize, withscores: bool) {
    if withscores && r.resp == 2 {
        r.array(2 * n);
    } else {
        r.array(n);
    }
}

/// One element of a `scored_array`.
fn scored_element(r: &mut Reply, member: Entry<'_>, score: f64, withscores: bool) {
    if withscores && r.resp > 2 {
        r.array(2);
    }
    bulk_entry(r, member);
    if withscores {
        r.double(score);
    }
}

/// Members of `key` were removed by the command: its event, then, when its
/// sorted set was emptied, the key's deletion (`del`), as Redis orders them.
fn removed(ctx: &mut Ctx, key: &[u8], event: &str, empty: bool) {
    ctx.notify(notify::ZSET, event, key);
    if empty {
        ctx.db(key).remove(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
}

/// Stores `z` at `key` as Redis's `setKey` (any old value and its TTL go).
fn store(ctx: &mut Ctx, key: &[u8], z: ZSet) {
    let (now, db) = (ctx.now_ms, ctx.db);
    let shard = ctx.shards.of(key);
    let stored = shard.dbs[db].set(key, Value::ZSet(z), now, false);
    shard.stored(db, key, stored);
    shard.modified(db, key);
}

// --- ZADD / ZINCRBY ------------------------------------------------------

struct ZaddOptions {
    flags: AddFlags,
    ch: bool,
    /// Index of the first score.
    first: usize,
}

/// ZADD's options and Redis's errors for their bad combinations.
fn parse_zadd(args: &[&[u8]]) -> Result<ZaddOptions, &'static str> {
    let mut o = ZaddOptions { flags: AddFlags::default(), ch: false, first: 2 };
    while o.first < args.len() {
        let w = cstr(args[o.first]);
        match () {
            _ if eq_ic(w, "nx") => o.flags.nx = true,
            _ if eq_ic(w, "xx") => o.flags.xx = true,
            _ if eq_ic(w, "ch") => o.ch = true,
            _ if eq_ic(w, "incr") => o.flags.incr = true,
            _ if eq_ic(w, "gt") => o.flags.gt = true,
            _ if eq_ic(w, "lt") => o.flags.lt = true,
            _ => break,
        }
        o.first += 1;
    }
    let elements = args.len() - o.first;
    if elements == 0 || elements % 2 == 1 {
        return Err(err::SYNTAX);
    }
    let f = o.flags;
    if f.nx && f.xx {
        return Err("ERR XX and NX options at the same time are not compatible");
    }
    // Any two of GT, LT and NX.
    if [f.gt, f.lt, f.nx].iter().filter(|&&on| on).count() > 1 {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 2 {
        return Err("ERR INCR option supports a single increment-element pair");
    }
    Ok(o)
}

pub(crate) fn zadd(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match parse_zadd(args) {
        Ok(o) => zadd_apply(ctx, args, r, o),
        Err(e) => r.error(e),
    }
}

fn zincrby(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let o = ZaddOptions { flags: AddFlags { incr: true, ..AddFlags::default() }, ch: false, first: 2 };
    zadd_apply(ctx, args, r, o);
}

/// Redis's `zaddGenericCommand` after option parsing.
fn zadd_apply(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, o: ZaddOptions) {
    let key = args[1];
    let pairs = &args[o.first..];
    // Every score is checked before anything changes. A few pairs (one,
    // mostly) on the stack: no allocation per ZADD.
    let mut few = [0.0f64; 8];
    let mut many = Vec::new();
    let scores: &mut [f64] = if pairs.len() / 2 <= few.len() {
        &mut few[..pairs.len() / 2]
    } else {
        many.resize(pairs.len() / 2, 0.0);
        &mut many
    };
    for (slot, p) in scores.iter_mut().zip(pairs.chunks(2)) {
        match score::parse_strict(p[0]) {
            Some(s) => *slot = s,
            None => return r.error(err::NOT_FLOAT),
        }
    }
    let scores: &[f64] = scores;
    let (limits, now) = (limits(ctx), ctx.now_ms);
    let (mut added, mut updated, mut processed) = (0, 0, 0);
    let mut last = 0.0;
    let mut nan = false;
    let mut apply = |z: &mut ZSet| {
        for (p, &s) in pairs.chunks(2).zip(scores) {
            let (what, new) = z.add(p[1], s, o.flags, limits);
            match what {
                Added::Nan => {
                    nan = true;
                    return;
                }
                Added::Added => added += 1,
                Added::Updated => updated += 1,
                Added::Unchanged | Added::Nop => {}
            }
            if what != Added::Nop {
                processed += 1;
            }
            last = new;
        }
        z.compact();
    };
    match ctx.lookup_write::<ZSetKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(Some(e)) => apply(zset_of(&mut e.value)),
        Ok(None) if o.flags.xx => {}
        Ok(None) => {
            // A new key starts as a listpack; `add` converts it as Redis's
            // zsetAdd does once a member or the count exceeds the limits.
            let mut z = ZSet::default();
            apply(&mut z);
            ctx.db(key).set(key, Value::ZSet(z), now, false);
            ctx.notify_new(key);
        }
    }
    if added + updated > 0 {
        // Redis counts each added or updated member as a write.
        ctx.wrote_key(key, (added + updated) as usize, notify::ZSET, if o.flags.incr { "zincr" } else { "zadd" });
    }
    if nan {
        return r.error(NAN_ERROR);
    }
    if o.flags.incr {
        if processed > 0 {
            r.double(last);
        } else {
            r.null();
        }
    } else {
        r.int(if o.ch { added + updated } else { added });
    }
}

// --- ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK ---------------------------------

fn zrem(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let (deleted, empty) = match ctx.lookup_write::<ZSetKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.int(0),
        Ok(Some(e)) => {
            let z = zset_of(&mut e.value);
            let mut deleted = 0;
            for m in &args[2..] {
                if z.remove(m).is_some() {
                    deleted += 1;
                    if z.is_empty() {
                        break;
                    }
                }
            }
            z.compact();
            (deleted, z.is_empty())
        }
    };
    if deleted > 0 {
        removed(ctx, key, "zrem", empty);
        ctx.modified(ctx.db, key);
    }
    r.int(deleted);
}

fn zcard(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => r.error(err::WRONGTYPE),
        Ok(None) => r.int(0),
        Ok(Some(e)) => r.int(zset_of(&mut e.value).len() as i64),
    }
}

fn zscore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => r.error(err::WRONGTYPE),
        Ok(None) => r.null(),
        Ok(Some(e)) => match zset_of(&mut e.value).score(args[2]) {
            Some(s) => r.double(s),
            None => r.null(),
        },
    }
}

fn zmscore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let z = match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => None,
        Ok(Some(e)) => Some(zset_of(&mut e.value)),
    };
    r.array(args.len() - 2);
    for m in &args[2..] {
        match z.as_ref().and_then(|z| z.score(m)) {
            Some(s) => r.double(s),
            None => r.null(),
        }
    }
}

fn zrank_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, rev: bool) {
    match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => r.error(err::WRONGTYPE),
        Ok(None) => r.null(),
        Ok(Some(e)) => match zset_of(&mut e.value).rank(args[2], rev) {
            Some(rank) => r.int(rank as i64),
            None => r.null(),
        },
    }
}

fn zrank(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    zrank_generic(ctx, args, r, false);
}

fn zrevrank(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    zrank_generic(ctx, args, r, true);
}

// --- ranges ---------------------------------------------------------------

/// `zslParseRange`: `(` makes an end exclusive.
fn parse_score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let bound = |s: &[u8]| -> Option<ScoreBound> {
        match s.first() {
            Some(b'(') => score::parse_range_item(&s[1..]).map(|value| ScoreBound { value, exclusive: true }),
            _ => score::parse_range_item(s).map(|value| ScoreBound { value, exclusive: false }),
        }
    };
    Some(ScoreRange { min: bound(min)?, max: bound(max)? })
}

/// `zslParseLexRange`.
fn parse_lex_range(min: &[u8], max: &[u8]) -> Option<(LexBound, LexBound)> {
    Some((LexBound::parse(min)?, LexBound::parse(max)?))
}

fn zcount(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(range) = parse_score_range(args[2], args[3]) else {
        return r.error(SCORE_RANGE_ERROR);
    };
    match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => r.error(err::WRONGTYPE),
        Ok(None) => r.int(0),
        Ok(Some(e)) => r.int(zset_of(&mut e.value).score_range(&range).len() as i64),
    }
}

fn zlexcount(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some((min, max)) = parse_lex_range(args[2], args[3]) else {
        return r.error(LEX_RANGE_ERROR);
    };
    match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => r.error(err::WRONGTYPE),
        Ok(None) => r.int(0),
        Ok(Some(e)) => {
            let z = zset_of(&mut e.value);
            r.int(z.listpack_lex_walk(&min, &max, false, 0, usize::MAX).unwrap_or_else(|| z.lex_range(&min, &max)).len() as i64)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// The range a ZRANGE-family command selects, parsed.
enum Selector {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexBound, LexBound),
}

/// A parsed ZRANGE / ZRANGEBYSCORE / ... / ZRANGESTORE request.
struct RangeRequest {
    selector: Selector,
    rev: bool,
    withscores: bool,
    offset: i64,
    /// -1: no LIMIT.
    limit: i64,
}

/// Redis's `zrangeGenericCommand` steps 1 and 2: options after `src min
/// max` (at `src`), then the range itself. `rev`/`kind` are fixed by the
/// older commands (None / Auto: ZRANGE and ZRANGESTORE decide by option).
fn parse_range(args: &[&[u8]], src: usize, store: bool, mut kind: RangeType, rev: Option<bool>) -> Result<RangeRequest, &'static str> {
    let mut withscores = false;
    let (mut offset, mut limit) = (0, -1);
    let mut direction = rev;
    let mut j = src + 3;
    while j < args.len() {
        let w = cstr(args[j]);
        let left = args.len() - j - 1;
        if !store && eq_ic(w, "withscores") {
            withscores = true;
        } else if eq_ic(w, "limit") && left >= 2 {
            offset = super::parse_i64(args[j + 1]).ok_or(err::NOT_INTEGER)?;
            limit = super::parse_i64(args[j + 2]).ok_or(err::NOT_INTEGER)?;
            j += 2;
        } else if direction.is_none() && eq_ic(w, "rev") {
            direction = Some(true);
        } else if kind == RangeType::Auto && eq_ic(w, "bylex") {
            kind = RangeType::Lex;
        } else if kind == RangeType::Auto && eq_ic(w, "byscore") {
            kind = RangeType::Score;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    let rev = direction.unwrap_or(false);
    if kind == RangeType::Auto {
        kind = RangeType::Rank;
    }
    if limit != -1 && kind == RangeType::Rank {
        return Err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    if withscores && kind == RangeType::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let (mut min, mut max) = (args[src + 1], args[src + 2]);
    if rev && kind != RangeType::Rank {
        // The REV forms of BYSCORE and BYLEX take max first.
        std::mem::swap(&mut min, &mut max);
    }
    let selector = match kind {
        RangeType::Score => Selector::Score(parse_score_range(min, max).ok_or(SCORE_RANGE_ERROR)?),
        RangeType::Lex => {
            let (a, b) = parse_lex_range(min, max).ok_or(LEX_RANGE_ERROR)?;
            Selector::Lex(a, b)
        }
        _ => Selector::Rank(super::parse_i64(min).ok_or(err::NOT_INTEGER)?, super::parse_i64(max).ok_or(err::NOT_INTEGER)?),
    };
    Ok(RangeRequest { selector, rev, withscores, offset, limit })
}

/// The ranks (lowest first) a request selects in `z`; the caller walks
/// them backwards for REV.
fn selected_ranks(z: &ZSet, q: &RangeRequest) -> std::ops::Range<usize> {
    let len = z.len() as i64;
    let in_range = match &q.selector {
        Selector::Rank(start, end) => {
            let (mut start, mut end) = (*start, *end);
            if start < 0 {
                start += len;
            }
            if end < 0 {
                end += len;
            }
            start = start.max(0);
            if start > end || start >= len {
                return 0..0;
            }
            end = end.min(len - 1);
            // For ZREVRANGE the indexes count from the highest.
            return if q.rev { (len - 1 - end) as usize..(len - start) as usize } else { start as usize..end as usize + 1 };
        }
        Selector::Score(range) => z.score_range(range),
        Selector::Lex(..) => 0..0,
    };
    // LIMIT: a negative offset selects nothing, a negative count everything.
    if q.offset < 0 {
        return 0..0;
    }
    let offset = q.offset as usize;
    let count = if q.limit < 0 { usize::MAX } else { q.limit as usize };
    let in_range = match &q.selector {
        Selector::Lex(min, max) => match z.listpack_lex_walk(min, max, q.rev, offset, count) {
            Some(ranks) => return ranks,
            None => z.lex_range(min, max),
        },
        _ => in_range,
    };
    if q.rev {
        let end = in_range.end.saturating_sub(offset).max(in_range.start);
        end.saturating_sub(count).max(in_range.start)..end
    } else {
        let start = in_range.start.saturating_add(offset).min(in_range.end);
        start..start.saturating_add(count).min(in_range.end)
    }
}

fn range_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, kind: RangeType, rev: Option<bool>) {
    let q = match parse_range(args, 1, false, kind, rev) {
        Ok(q) => q,
        Err(e) => return r.error(e),
    };
    let z = match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.array(0),
        Ok(Some(e)) => zset_of(&mut e.value),
    };
    let ranks = selected_ranks(z, &q);
    scored_array(r, ranks.len(), q.withscores);
    for (m, s) in z.range(ranks, q.rev) {
        scored_element(r, m, s, q.withscores);
    }
}

fn zrange(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    range_generic(ctx, args, r, RangeType::Auto, None);
}

fn zrevrange(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    range_generic(ctx, args, r, RangeType::Rank, Some(true));
}

fn zrangebyscore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    range_generic(ctx, args, r, RangeType::Score, Some(false));
}

fn zrevrangebyscore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    range_generic(ctx, args, r, RangeType::Score, Some(true));
}

fn zrangebylex(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    range_generic(ctx, args, r, RangeType::Lex, Some(false));
}

fn zrevrangebylex(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    range_generic(ctx, args, r, RangeType::Lex, Some(true));
}

/// Owned copies of elements, for results that outlive the source borrow.
fn owned<'a>(it: impl Iterator<Item = (Entry<'a>, f64)>) -> Vec<(Vec<u8>, f64)> {
    it.map(|(m, s)| (m.to_vec(), s)).collect()
}

fn zrangestore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let q = match parse_range(args, 2, true, RangeType::Auto, None) {
        Ok(q) => q,
        Err(e) => return r.error(e),
    };
    let (dst, limits) = (args[1], limits(ctx));
    let mut elements = match ctx.lookup_read::<ZSetKind>(args[2]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => Vec::new(),
        Ok(Some(e)) => {
            let z = zset_of(&mut e.value);
            let ranks = selected_ranks(z, &q);
            owned(z.range(ranks, false))
        }
    };
    // Redis adds the range, in reply order, to a destination that starts as
    // a listpack unless a rank range is longer than the listpack limit
    // (`zsetTypeCreate`): the elements added before it converts (the limit
    // reached, a long member) lose a -0 score, as a listpack stores "0".
    let n = elements.len();
    if !(matches!(q.selector, Selector::Rank(..)) && n > limits.entries) {
        let order: Vec<usize> = if q.rev { (0..n).rev().collect() } else { (0..n).collect() };
        for (added, i) in order.into_iter().enumerate() {
            if added >= limits.entries || elements[i].0.len() > limits.value {
                break;
            }
            if elements[i].1 == 0.0 {
                elements[i].1 = 0.0;
            }
        }
    }
    store_result(ctx, dst, &elements, limits, r, "zrangestore");
}

/// Stores a result sorted lowest first at `dst` (or deletes `dst` when
/// empty) and replies its size, as ZRANGESTORE and ZUNIONSTORE do;
/// `event` is the command's notification.
pub(crate) fn store_result(ctx: &mut Ctx, dst: &[u8], elements: &[(Vec<u8>, f64)], limits: Limits, r: &mut Reply, event: &str) {
    if elements.is_empty() {
        if ctx.db(dst).delete(dst) {
            ctx.modified(ctx.db, dst);
            ctx.notify(notify::GENERIC, "del", dst);
        }
        return r.int(0);
    }
    let refs: Vec<(&[u8], f64)> = elements.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
    store(ctx, dst, ZSet::from_sorted(&refs, limits));
    ctx.notify(notify::ZSET, event, dst);
    r.int(elements.len() as i64);
}

/// ZREMRANGEBYRANK / BYSCORE / BYLEX (`zremrangeGenericCommand`).
fn zremrange_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, selector: Result<Selector, &'static str>) {
    let selector = match selector {
        Ok(s) => s,
        Err(e) => return r.error(e),
    };
    let key = args[1];
    let event = match selector {
        Selector::Rank(..) => "zremrangebyrank",
        Selector::Score(..) => "zremrangebyscore",
        Selector::Lex(..) => "zremrangebylex",
    };
    let q = RangeRequest { selector, rev: false, withscores: false, offset: 0, limit: -1 };
    let (deleted, empty) = match ctx.lookup_write::<ZSetKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.int(0),
        Ok(Some(e)) => {
            let z = zset_of(&mut e.value);
            let ranks = selected_ranks(z, &q);
            let deleted = z.remove_ranks(ranks);
            z.compact();
            (deleted, z.is_empty())
        }
    };
    if deleted > 0 {
        removed(ctx, key, event, empty);
        ctx.modified(ctx.db, key);
    }
    r.int(deleted as i64);
}

fn zremrangebyrank(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let s = match (super::parse_i64(args[2]), super::parse_i64(args[3])) {
        (Some(a), Some(b)) => Ok(Selector::Rank(a, b)),
        _ => Err(err::NOT_INTEGER),
    };
    zremrange_generic(ctx, args, r, s);
}

fn zremrangebyscore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let s = parse_score_range(args[2], args[3]).map(Selector::Score).ok_or(SCORE_RANGE_ERROR);
    zremrange_generic(ctx, args, r, s);
}

fn zremrangebylex(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let s = parse_lex_range(args[2], args[3]).map(|(a, b)| Selector::Lex(a, b)).ok_or(LEX_RANGE_ERROR);
    zremrange_generic(ctx, args, r, s);
}

// --- ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD -----------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// `zunionInterAggregate`: a sum of +inf and -inf is 0.
fn aggregate(target: &mut f64, v: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *target {
                *target = v;
            }
        }
        Aggregate::Max => {
            if v > *target {
                *target = v;
            }
        }
    }
}

/// One input of a set operation: a sorted set's elements or a set's (at
/// score 1), in their order, with a lookup table built when needed.
struct Source {
    elements: Vec<(Vec<u8>, f64)>,
    weight: f64,
    table: Option<HashMap<Vec<u8>, f64>>,
}

impl Source {
    fn find(&mut self, member: &[u8]) -> Option<f64> {
        let elements = &self.elements;
        self.table.get_or_insert_with(|| elements.iter().cloned().collect()).get(member).copied()
    }
}

/// A parsed set operation.
struct SetOp {
    weights: Option<Vec<f64>>,
    aggregate: Aggregate,
    withscores: bool,
    limit: usize,
}

/// Options after the keys (`zunionInterDiffGenericCommand`).
fn parse_setop(args: &[&[u8]], mut j: usize, keys: usize, op: Op, store: bool, card: bool) -> Result<SetOp, &'static str> {
    let mut o = SetOp { weights: None, aggregate: Aggregate::Sum, withscores: false, limit: 0 };
    while j < args.len() {
        let w = cstr(args[j]);
        let left = args.len() - j;
        if op != Op::Diff && !card && left > keys && eq_ic(w, "weights") {
            let mut weights = Vec::with_capacity(keys);
            for a in &args[j + 1..j + 1 + keys] {
                weights.push(score::parse_strict(a).ok_or("ERR weight value is not a float")?);
            }
            o.weights = Some(weights);
            j += 1 + keys;
        } else if op != Op::Diff && !card && left >= 2 && eq_ic(w, "aggregate") {
            let a = cstr(args[j + 1]);
            o.aggregate = if eq_ic(a, "sum") {
                Aggregate::Sum
            } else if eq_ic(a, "min") {
                Aggregate::Min
            } else if eq_ic(a, "max") {
                Aggregate::Max
            } else {
                return Err(err::SYNTAX);
            };
            j += 2;
        } else if !store && !card && eq_ic(w, "withscores") {
            o.withscores = true;
            j += 1;
        } else if card && left >= 2 && eq_ic(w, "limit") {
            match super::parse_i64(args[j + 1]) {
                Some(n) if n >= 0 => o.limit = n as usize,
                _ => return Err("ERR LIMIT can't be negative"),
            }
            j += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    Ok(o)
}

/// What a set operation leaves: the elements, or a count for ZINTERCARD.
enum SetOpResult {
    Elements(Vec<(Vec<u8>, f64)>, bool),
    Cardinality(usize),
}

/// Reads the inputs, parses the options and computes the result, replying
/// the error when something is wrong. `at` is the index of numkeys.
#[allow(clippy::too_many_arguments)]
fn setop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, at: usize, op: Op, store: bool, card: bool, name: &str) -> Option<SetOpResult> {
    let Some(n) = super::parse_i64(args[at]) else {
        r.error(err::NOT_INTEGER);
        return None;
    };
    if n < 1 {
        r.error(&format!("ERR at least 1 input key is needed for '{}' command", name));
        return None;
    }
    if n as u64 > (args.len() - at - 1) as u64 {
        r.error(err::SYNTAX);
        return None;
    }
    let n = n as usize;
    // The inputs are looked up (and type-checked) before the options are
    // parsed, as Redis does: WRONGTYPE wins over a syntax error.
    let mut sources = Vec::with_capacity(n);
    for key in &args[at + 1..at + 1 + n] {
        let elements = match ctx.lookup_read::<AnyKind>(key) {
            Ok(None) => Vec::new(),
            Ok(Some(e)) => match &e.value {
                Value::ZSet(z) => owned(z.iter()),
                Value::Set(s) => s.iter().map(|m| (m.to_vec(), 1.0)).collect(),
                _ => {
                    r.error(err::WRONGTYPE);
                    return None;
                }
            },
            Err(WrongType) => unreachable!("AnyKind holds every value"),
        };
        sources.push(Source { elements, weight: 1.0, table: None });
    }
    let o = match parse_setop(args, at + 1 + n, n, op, store, card) {
        Ok(o) => o,
        Err(e) => {
            r.error(e);
            return None;
        }
    };
    if let Some(w) = &o.weights {
        for (s, &w) in sources.iter_mut().zip(w) {
            s.weight = w;
        }
    }
    if op != Op::Diff {
        // Smallest first, as Redis sorts its inputs (stable: equal sizes
        // keep their order, which decides the order of a SUM's additions).
        sources.sort_by_key(|s| s.elements.len());
    }
    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut cardinality = 0;
    match op {
        Op::Inter => {
            let (first, rest) = sources.split_first_mut().expect("at least one input");
            'elements: for (m, s) in &first.elements {
                let mut score = first.weight * s;
                if score.is_nan() {
                    score = 0.0;
                }
                for other in rest.iter_mut() {
                    match other.find(m) {
                        Some(v) => aggregate(&mut score, v * other.weight, o.aggregate),
                        None => continue 'elements,
                    }
                }
                if card {
                    cardinality += 1;
                    if o.limit > 0 && cardinality >= o.limit {
                        break;
                    }
                } else {
                    result.push((m.clone(), score));
                }
            }
        }
        Op::Union => {
            let mut acc: indexmap::IndexMap<Vec<u8>, f64> = indexmap::IndexMap::new();
            for src in &sources {
                for (m, s) in &src.elements {
                    let mut score = src.weight * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, score, o.aggregate),
                        None => {
                            acc.insert(m.clone(), score);
                        }
                    }
                }
            }
            result = acc.into_iter().collect();
        }
        Op::Diff => {
            let (first, rest) = sources.split_first_mut().expect("at least one input");
            for (m, s) in &first.elements {
                if rest.iter_mut().all(|other| other.find(m).is_none()) {
                    result.push((m.clone(), *s));
                }
            }
        }
    }
    if card {
        return Some(SetOpResult::Cardinality(cardinality));
    }
    // Redis's result is a skiplist: ordered by score, then member bytes.
    result.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.0.cmp(&b.0)));
    Some(SetOpResult::Elements(result, o.withscores))
}

fn setop_reply(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, op: Op, name: &str) {
    if let Some(SetOpResult::Elements(elements, withscores)) = setop(ctx, args, r, 1, op, false, false, name) {
        scored_array(r, elements.len(), withscores);
        for (m, s) in &elements {
            scored_element(r, Entry::Str(m), *s, withscores);
        }
    }
}

fn setop_store(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, op: Op, name: &str) {
    let limits = limits(ctx);
    if let Some(SetOpResult::Elements(elements, _)) = setop(ctx, args, r, 2, op, true, false, name) {
        store_result(ctx, args[1], &elements, limits, r, name);
    }
}

fn zunion(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    setop_reply(ctx, args, r, Op::Union, "zunion");
}

fn zinter(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    setop_reply(ctx, args, r, Op::Inter, "zinter");
}

fn zdiff(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    setop_reply(ctx, args, r, Op::Diff, "zdiff");
}

fn zunionstore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    setop_store(ctx, args, r, Op::Union, "zunionstore");
}

fn zinterstore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    setop_store(ctx, args, r, Op::Inter, "zinterstore");
}

fn zdiffstore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    setop_store(ctx, args, r, Op::Diff, "zdiffstore");
}

fn zintercard(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if let Some(SetOpResult::Cardinality(n)) = setop(ctx, args, r, 1, Op::Inter, false, true, "zintercard") {
        r.int(n as i64);
    }
}

// --- ZPOPMIN, ZPOPMAX, ZMPOP ---------------------------------------------

/// How a pop replies (`genericZpopCommand`'s emitkey / use_nested_array /
/// reply_nil_when_empty).
struct PopReply {
    emit_key: bool,
    nested: bool,
    nil_when_empty: bool,
}

/// Pops up to `count` (None: one, not asked) elements from the first
/// non-empty key of `keys`. Returns the key popped from, if any.
fn zpop_generic<'k>(ctx: &mut Ctx, keys: &[&'k [u8]], max: bool, count: Option<usize>, how: PopReply, r: &mut Reply) -> Option<(&'k [u8], usize)> {
    // The first key holding a sorted set is popped from in the same
    // lookup that found it (one dict lookup per key, not two).
    let mut popped = None;
    for &key in keys {
        let z = match ctx.lookup_write::<ZSetKind>(key) {
            Err(WrongType) => {
                r.error(err::WRONGTYPE);
                return None;
            }
            Ok(None) => continue,
            Ok(Some(e)) => zset_of(&mut e.value),
        };
        if count == Some(0) {
            r.array(0);
            return None;
        }
        let n = count.unwrap_or(1).min(z.len());
        match (how.emit_key, how.nested) {
            (false, false) => r.array(2 * n),
            (false, true) => r.array(n),
            (true, false) => {
                r.array(2 * n + 1);
                r.bulk(key);
            }
            (true, true) => {
                r.array(2);
                r.bulk(key);
                r.array(n);
            }
        }
        for _ in 0..n {
            z.pop_with(max, |m, s| {
                if how.nested {
                    r.array(2);
                }
                r.entry(m);
                r.double(s);
            })
            .expect("n is at most the size");
        }
        z.compact();
        popped = Some((key, z.is_empty(), n));
        break;
    }
    let Some((key, empty, n)) = popped else {
        if how.nil_when_empty {
            r.null_array();
        } else {
            r.array(0);
        }
        return None;
    };
    removed(ctx, key, if max { "zpopmax" } else { "zpopmin" }, empty);
    ctx.modified(ctx.db, key);
    Some((key, n))
}

/// BZPOPMIN/BZPOPMAX (`count` None) and BZMPOP on a sorted set known to
/// exist: pops, replies in the blocking commands' form, returns how many
/// elements went.
pub(crate) fn zpop_blocking(ctx: &mut Ctx, key: &[u8], max: bool, count: Option<usize>, r: &mut Reply) -> usize {
    let len = match ctx.lookup_write::<ZSetKind>(key) {
        Ok(Some(e)) => zset_of(&mut e.value).len(),
        _ => 0,
    };
    let how = PopReply { emit_key: true, nested: count.is_some(), nil_when_empty: true };
    zpop_generic(ctx, &[key], max, count, how, r);
    len.min(count.unwrap_or(1))
}

fn zpop_min_max(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, max: bool) {
    if args.len() > 3 {
        return r.error(err::SYNTAX);
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => match super::parse_i64(a) {
            // Redis's getPositiveLongFromObjectOrReply: one error for both.
            None => return r.error("ERR value is out of range, must be positive"),
            Some(n) if n < 0 => return r.error("ERR value is out of range, must be positive"),
            Some(n) => Some(n as usize),
        },
    };
    let how = PopReply { emit_key: false, nested: r.resp > 2 && count.is_some(), nil_when_empty: false };
    zpop_generic(ctx, &args[1..2], max, count, how, r);
}

fn zpopmin(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    zpop_min_max(ctx, args, r, false);
}

fn zpopmax(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    zpop_min_max(ctx, args, r, true);
}

/// MIN / MAX: true for MAX (ZMPOP's and BZMPOP's side word).
pub(crate) fn parse_min_max(arg: &[u8]) -> Option<bool> {
    let w = cstr(arg);
    if eq_ic(w, "min") {
        Some(false)
    } else if eq_ic(w, "max") {
        Some(true)
    } else {
        None
    }
}

fn zmpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let super::list::MpopOptions { keys, side: max, count } = match super::list::MpopOptions::parse(args, 1, parse_min_max) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    let how = PopReply { emit_key: true, nested: true, nil_when_empty: true };
    if let Some((key, popped)) = zpop_generic(ctx, &args[keys], max, Some(count), how, r) {
        // Redis 7.0 propagates ZMPOP as ZPOPMIN/ZPOPMAX key count, with
        // the count of elements popped.
        let count = itoa::Buffer::new().format(popped).as_bytes().to_vec();
        ctx.propagate_as(&[if max { b"ZPOPMAX" } else { b"ZPOPMIN" }, key, &count]);
    }
}

// --- ZRANDMEMBER ------------------------------------------------------------

fn zrandmember(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() == 2 {
        let mut rng = ctx.home().rng;
        let picked = match ctx.lookup_read::<ZSetKind>(args[1]) {
            Err(WrongType) => return r.error(err::WRONGTYPE),
            Ok(None) => return r.null(),
            Ok(Some(e)) => {
                let z = zset_of(&mut e.value);
                let at = (xorshift(&mut rng) % z.len() as u64) as usize;
                owned(z.range(at..at + 1, false))
            }
        };
        ctx.home().rng = rng;
        return r.bulk(&picked[0].0);
    }
    let count = match super::parse_i64(args[2]) {
        None => return r.error(err::NOT_INTEGER),
        Some(i64::MIN) => return r.error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
        Some(n) => n,
    };
    let withscores = match args.len() {
        3 => false,
        4 if eq_ic(cstr(args[3]), "withscores") => true,
        _ => return r.error(err::SYNTAX),
    };
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return r.error("ERR value is out of range");
    }
    let stop = ctx.reply_bytes_stop();
    let mut rng = ctx.home().rng;
    let z = match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.array(0),
        Ok(Some(e)) => zset_of(&mut e.value),
    };
    let size = z.len();
    if count == 0 {
        return r.array(0);
    }
    let element = |r: &mut Reply, rank: usize| {
        if let Some((m, s)) = z.range(rank..rank + 1, false).next() {
            scored_element(r, m, s, withscores);
        }
    };
    if count < 0 || count == 1 {
        // Repeats allowed: each pick is independent.
        let n = count.unsigned_abs() as usize;
        scored_array(r, n, withscores);
        // Stopped at the client's hard output limit (`Ctx::reply_bytes_stop`).
        for _ in 0..n {
            if r.buf.len() >= stop {
                break;
            }
            let rank = (xorshift(&mut rng) % size as u64) as usize;
            element(r, rank);
        }
    } else if count as usize >= size {
        // The whole set, highest first (Redis 7.0 walks it from the tail).
        scored_array(r, size, withscores);
        for (m, s) in z.range(0..size, true) {
            scored_element(r, m, s, withscores);
        }
    } else {
        // Distinct members: a partial Fisher-Yates shuffle of the ranks.
        let n = count as usize;
        let mut ranks: Vec<usize> = (0..size).collect();
        for i in 0..n {
            let j = i + (xorshift(&mut rng) % (size - i) as u64) as usize;
            ranks.swap(i, j);
        }
        scored_array(r, n, withscores);
        for &rank in &ranks[..n] {
            element(r, rank);
        }
    }
    ctx.home().rng = rng;
}

// --- ZSCAN ------------------------------------------------------------------

fn zscan(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(cursor) = super::keys::parse_cursor(args[2]) else {
        return r.error("ERR invalid cursor");
    };
    let z = match ctx.lookup_read::<ZSetKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.raw(b"*2\r\n$1\r\n0\r\n*0\r\n"),
        Ok(Some(e)) => zset_of(&mut e.value),
    };
    let (count, pattern) = match super::keys::parse_scan_options(args, 3, false) {
        Ok(o) => (o.count, o.pattern),
        Err(e) => return r.error(e),
    };
    let matches = |m: &[u8]| pattern.is_none_or(|p| crate::config::glob_match(p, m, false));
    // (member, score text)
    let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let next = match z {
        ZSet::Listpack(lp) => {
            // All at once, the score as stored, as Redis does.
            for (m, s) in lp.pairs() {
                let m = m.to_vec();
                if matches(&m) {
                    found.push((m, s.to_vec()));
                }
            }
            0
        }
        ZSet::Tree(t) => t.scan(cursor, count as usize, |m, s| {
            if matches(m) {
                found.push((m.to_vec(), crate::protocol::reply::format_double(s).into_bytes()));
            }
        }),
    };
    r.array(2);
    r.bulk(itoa::Buffer::new().format(next).as_bytes());
    r.array(2 * found.len());
    for (m, s) in &found {
        r.bulk(m);
        r.bulk(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zs(pairs: &[(&str, f64)]) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in pairs {
            z.add(m.as_bytes(), *s, AddFlags::default(), Limits { entries: 128, value: 64 });
        }
        z
    }

    fn members(z: &ZSet, q: &RangeRequest) -> Vec<String> {
        z.range(selected_ranks(z, q), q.rev).map(|(m, _)| String::from_utf8(m.to_vec()).unwrap()).collect()
    }

    #[test]
    fn zadd_option_errors_in_redis_order() {
        let args = |s: &str| s.split(' ').map(|w| w.as_bytes().to_vec()).collect::<Vec<_>>();
        let check = |s: &str| {
            let a = args(s);
            let refs: Vec<&[u8]> = a.iter().map(|v| v.as_slice()).collect();
            parse_zadd(&refs).err()
        };
        assert_eq!(check("zadd k nx xx 1 a"), Some("ERR XX and NX options at the same time are not compatible"));
        assert_eq!(check("zadd k gt lt 1 a"), Some("ERR GT, LT, and/or NX options at the same time are not compatible"));
        assert_eq!(check("zadd k incr 1 a 2 b"), Some("ERR INCR option supports a single increment-element pair"));
        assert_eq!(check("zadd k nx xx 1"), Some(err::SYNTAX));
        assert_eq!(check("zadd k xx gt ch 1 a"), None);
    }

    #[test]
    fn ranges_with_limit_and_rev_in_both_encodings() {
        let pairs = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0), ("e", 5.0)];
        let small = zs(&pairs);
        let mut big = zs(&pairs);
        big.convert_to_tree();
        let all = ScoreRange { min: ScoreBound { value: f64::NEG_INFINITY, exclusive: false }, max: ScoreBound { value: 4.0, exclusive: false } };
        for z in [&small, &big] {
            let q = RangeRequest { selector: Selector::Score(all), rev: false, withscores: false, offset: 1, limit: 2 };
            assert_eq!(members(z, &q), ["b", "c"]);
            let q = RangeRequest { selector: Selector::Score(all), rev: true, withscores: false, offset: 1, limit: 2 };
            assert_eq!(members(z, &q), ["c", "b"]);
            let q = RangeRequest { selector: Selector::Score(all), rev: true, withscores: false, offset: -1, limit: 2 };
            assert!(members(z, &q).is_empty());
            let q = RangeRequest { selector: Selector::Rank(0, 1), rev: true, withscores: false, offset: 0, limit: -1 };
            assert_eq!(members(z, &q), ["e", "d"]);
            let q = RangeRequest { selector: Selector::Rank(-2, -1), rev: false, withscores: false, offset: 0, limit: -1 };
            assert_eq!(members(z, &q), ["d", "e"]);
        }
    }
}
