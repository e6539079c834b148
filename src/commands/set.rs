//! Set commands (Redis's t_set.c).
//!
//! Each handler keeps Redis 7.0's order of checks (arguments, then keys),
//! which decides the error a client sees when several things are wrong,
//! and builds result sets as Redis does (an empty intset that each member
//! is added to), so that the encoding of a stored result, and the order of
//! a small reply, are Redis's.
//!
//! Commands over several keys (SMOVE, SINTER/SUNION/SDIFF[STORE],
//! SINTERCARD) run held, every involved shard parked: the typed lookups
//! reach each key's shard through `ctx`, then the sets are read at once
//! through shared borrows of those shards.

use super::keys::{parse_cursor, parse_scan_options};
use super::lookup::{AnyKind, SetKind, WrongType};
use super::string::cstr;
use super::{err, flags::*, numkeys_keys, parse_i64, CommandSpec, Ctx};
use crate::config::glob_match;
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::keyspace::xorshift;
use crate::shard::slot::key_shard;
use crate::shard::{Entry, Value};
use crate::types::listpack::Entry as Member;
use crate::types::Set;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    const READ_FAST: &[&str] = &["@read", "@set", "@fast"];
    const READ_SLOW: &[&str] = &["@read", "@set", "@slow"];
    const WRITE_FAST: &[&str] = &["@write", "@set", "@fast"];
    const WRITE_SLOW: &[&str] = &["@write", "@set", "@slow"];
    let s = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("set");
    vec![
        s("sadd", -3, WRITE | DENYOOM | FAST, sadd).acl(WRITE_FAST).doc("1.0.0", "Add one or more members to a set"),
        s("scard", 2, READONLY | FAST, scard).acl(READ_FAST).doc("1.0.0", "Get the number of members in a set"),
        s("sdiff", -2, READONLY, sdiff).keys(1, -1, 1).acl(READ_SLOW).doc("1.0.0", "Subtract multiple sets"),
        s("sdiffstore", -3, WRITE | DENYOOM, sdiffstore)
            .keys(1, -1, 1)
            .acl(WRITE_SLOW)
            .doc("1.0.0", "Subtract multiple sets and store the resulting set in a key"),
        s("sinter", -2, READONLY, sinter).keys(1, -1, 1).acl(READ_SLOW).doc("1.0.0", "Intersect multiple sets"),
        s("sintercard", -3, READONLY, sintercard)
            .keys(0, 0, 0)
            .find_keys(|args, out| numkeys_keys(args, 1, out))
            .acl(READ_SLOW)
            .doc("7.0.0", "Intersect multiple sets and return the cardinality of the result"),
        s("sinterstore", -3, WRITE | DENYOOM, sinterstore)
            .keys(1, -1, 1)
            .acl(WRITE_SLOW)
            .doc("1.0.0", "Intersect multiple sets and store the resulting set in a key"),
        s("sismember", 3, READONLY | FAST, sismember).acl(READ_FAST).doc("1.0.0", "Determine if a given value is a member of a set"),
        s("smembers", 2, READONLY, sinter).acl(READ_SLOW).doc("1.0.0", "Get all the members in a set"),
        s("smismember", -3, READONLY | FAST, smismember).acl(READ_FAST).doc("6.2.0", "Returns the membership associated with the given elements for a set"),
        s("smove", 4, WRITE | FAST, smove).keys(1, 2, 1).acl(WRITE_FAST).doc("1.0.0", "Move a member from one set to another"),
        s("spop", -2, WRITE | FAST, spop).acl(WRITE_FAST).doc("1.0.0", "Remove and return one or multiple random members from a set"),
        s("srandmember", -2, READONLY, srandmember).acl(READ_SLOW).doc("1.0.0", "Get one or multiple random members from a set"),
        s("srem", -3, WRITE | FAST, srem).acl(WRITE_FAST).doc("1.0.0", "Remove one or more members from a set"),
        s("sscan", -3, READONLY, sscan).acl(READ_SLOW).doc("2.8.0", "Incrementally iterate Set elements"),
        s("sunion", -2, READONLY, sunion).keys(1, -1, 1).acl(READ_SLOW).doc("1.0.0", "Add multiple sets"),
        s("sunionstore", -3, WRITE | DENYOOM, sunionstore)
            .keys(1, -1, 1)
            .acl(WRITE_SLOW)
            .doc("1.0.0", "Add multiple sets and store the resulting set in a key"),
    ]
}

/// SPOP with a count switches from popping random members to rebuilding
/// the remainder when fewer than count / 5 would be left (Redis's
/// `SPOP_MOVE_STRATEGY_MUL`).
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;
/// SRANDMEMBER with a count copies the whole set and removes random members
/// when count * 3 exceeds its size (Redis's `SRANDMEMBER_SUB_STRATEGY_MUL`).
const SRANDMEMBER_SUB_STRATEGY_MUL: u64 = 3;

/// The set of an entry a `SetKind` lookup returned.
#[inline]
fn set_of(e: &mut Entry) -> &mut Set {
    match &mut e.value {
        Value::Set(s) => s,
        other => unreachable!("a set lookup returned a {}", other.type_name()),
    }
}

#[inline]
fn reply_member(r: &mut Reply, m: Member<'_>) {
    match m {
        Member::Int(v) => r.bulk_int(v),
        Member::Str(s) => r.bulk(s),
    }
}

#[inline]
fn random_below(rng: &mut u64, n: usize) -> usize {
    debug_assert!(n > 0);
    (xorshift(rng) % n as u64) as usize
}

fn max_intset_entries(ctx: &Ctx) -> usize {
    ctx.config().encodings.set_max_intset_entries
}

/// `key` of the client's db on its shard, for reading while other shards
/// are borrowed the same way; a key the typed lookups found live.
fn peek_set<'c>(ctx: &'c Ctx, key: &[u8]) -> Option<&'c Set> {
    let shard = ctx.shard(key_shard(key, ctx.shard_count));
    match shard.dbs[ctx.db].map.get(key).map(|e| &e.value) {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    }
}

/// Counts `writes` changes of a command that called `modified` once
/// (Redis's `server.dirty += n`).
fn more_dirty(ctx: &mut Ctx, key: &[u8], writes: usize) {
    ctx.shards.of(key).dirty += writes.saturating_sub(1) as u64;
}

/// Replaces `key` with the set `value` (Redis's `setKey`: any old value and
/// its TTL go), or deletes it when `value` is empty; `ctx.modified` and
/// the notification (`event`, or `del`) when something changed. Returns the
/// stored size.
fn store(ctx: &mut Ctx, key: &[u8], value: Set, event: &str) -> usize {
    let (db, now) = (ctx.db, ctx.now_ms);
    let n = value.len();
    if n > 0 {
        // Lazy expiry of the old value first, as `setKey`'s lookup does.
        let existed = matches!(ctx.lookup_write::<AnyKind>(key), Ok(Some(_)));
        ctx.db(key).set(key, Value::Set(value), now, false);
        ctx.modified(db, key);
        if !existed {
            ctx.notify_new(key);
        }
        ctx.notify(notify::SET, event, key);
    } else if ctx.db(key).delete(key) {
        // Redis's dbDelete: a key present but expired is deleted (`del`) too.
        ctx.modified(db, key);
        ctx.notify(notify::GENERIC, "del", key);
    }
    n
}

/// `event` on `key`, then `del` when the command emptied the set.
fn notify_then_del(ctx: &mut Ctx, key: &[u8], event: &str, deleted: bool) {
    ctx.notify(notify::SET, event, key);
    if deleted {
        ctx.notify(notify::GENERIC, "del", key);
    }
}

fn sadd(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (key, members) = (args[1], &args[2..]);
    let (max, now) = (max_intset_entries(ctx), ctx.now_ms);
    let added = match ctx.lookup_write::<SetKind>(key) {
        Ok(Some(e)) => {
            let set = set_of(e);
            let added = members.iter().filter(|m| set.add(m, max)).count();
            if set.take_rehash_start() {
                ctx.db(key).note_rehashing_value(key);
            }
            added
        }
        Ok(None) => {
            let mut set = Set::default();
            let added = members.iter().filter(|m| set.add(m, max)).count();
            let rehashing = set.take_rehash_start();
            ctx.db(key).set(key, Value::Set(set), now, false);
            if rehashing {
                ctx.db(key).note_rehashing_value(key);
            }
            ctx.notify_new(key);
            added
        }
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    if added > 0 {
        ctx.wrote_key(key, added, notify::SET, "sadd");
    }
    r.int(added as i64);
}

fn srem(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let db = ctx.db;
    let (removed, emptied, rehashing) = match ctx.lookup_write::<SetKind>(key) {
        Ok(Some(e)) => {
            let set = set_of(e);
            let mut removed = 0;
            for m in &args[2..] {
                removed += set.remove(m) as usize;
                if set.is_empty() {
                    break;
                }
            }
            (removed, set.is_empty(), set.take_rehash_start())
        }
        Ok(None) => return r.int(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    if emptied {
        ctx.db(key).remove(key);
    } else if rehashing {
        ctx.db(key).note_rehashing_value(key);
    }
    if removed > 0 {
        ctx.modified(db, key);
        more_dirty(ctx, key, removed);
        notify_then_del(ctx, key, "srem", emptied);
    }
    r.int(removed as i64);
}

fn scard(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<SetKind>(args[1]) {
        Ok(Some(e)) => r.int(set_of(e).len() as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

fn sismember(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<SetKind>(args[1]) {
        Ok(Some(e)) => r.int(set_of(e).contains(args[2]) as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

fn smismember(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let set = match ctx.lookup_read::<SetKind>(args[1]) {
        Ok(found) => found.map(|e| &*set_of(e)),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    r.array(args.len() - 2);
    for m in &args[2..] {
        r.int(set.is_some_and(|s| s.contains(m)) as i64);
    }
}

/// What a lookup of a key found, for commands that look up several keys
/// before acting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    Missing,
    Set,
    Wrong,
}

fn found(lookup: Result<Option<&mut Entry>, WrongType>) -> Found {
    match lookup {
        Ok(Some(_)) => Found::Set,
        Ok(None) => Found::Missing,
        Err(WrongType) => Found::Wrong,
    }
}

/// Redis's `smoveCommand`.
fn smove(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (src, dst, member) = (args[1], args[2], args[3]);
    let now = ctx.now_ms;
    let src_found = found(ctx.lookup_write::<SetKind>(src));
    let dst_found = found(ctx.lookup_write::<SetKind>(dst));
    if src_found == Found::Missing {
        return r.int(0);
    }
    if src_found == Found::Wrong || dst_found == Found::Wrong {
        return r.error(err::WRONGTYPE);
    }
    // Both are live now: later lookups in this command find them as they are.
    let from = set_of(ctx.db(src).lookup(src, now, false).expect("looked up above"));
    if src == dst {
        let is_member = from.contains(member);
        return r.int(is_member as i64);
    }
    if !from.remove(member) {
        return r.int(0);
    }
    smove_removed(ctx, src);
    smove_to(ctx, dst, member);
    r.int(1);
}

/// What SMOVE's lookups found of `key`, as bits: 1 a set, 2 of another
/// type, 4 a set holding `member` (network::rounds: each shard looks at
/// its own key).
pub fn smove_probe(ctx: &mut Ctx, key: &[u8], member: &[u8]) -> i64 {
    match ctx.lookup_write::<SetKind>(key) {
        Ok(Some(e)) => 1 | if set_of(e).contains(member) { 4 } else { 0 },
        Ok(None) => 0,
        Err(WrongType) => 2,
    }
}

/// The instant SMOVE's halves look their keys up at: never a TTL's end.
/// The decision was taken when both keys were looked up live (the local
/// command a moment before, in the same `now`; a two-shard hop in round 1,
/// maybe milliseconds before its round 2 runs): a TTL that ended since must
/// not delete a key here, silently (no `expired` event, no DEL in the write
/// stream), under the decided move; its expiry comes after, as Redis's
/// would after the command.
const AS_DECIDED: i64 = i64::MIN;

/// SMOVE's source half: `member` leaves `src`, which holds it; the set
/// goes when emptied (`srem`, then `del`).
pub fn smove_from(ctx: &mut Ctx, src: &[u8], member: &[u8]) {
    if let Some(e) = ctx.db(src).lookup(src, AS_DECIDED, false) {
        if set_of(e).remove(member) {
            smove_removed(ctx, src);
        }
    }
}

fn smove_removed(ctx: &mut Ctx, src: &[u8]) {
    let db = ctx.db;
    let (emptied, rehashing) = match ctx.db(src).lookup(src, AS_DECIDED, false) {
        Some(e) => {
            let set = set_of(e);
            (set.is_empty(), set.take_rehash_start())
        }
        None => (false, false),
    };
    if emptied {
        ctx.db(src).remove(src);
    } else if rehashing {
        ctx.db(src).note_rehashing_value(src);
    }
    ctx.modified(db, src);
    notify_then_del(ctx, src, "srem", emptied);
}

/// SMOVE's destination half: `member` joins `dst` (a set or no key),
/// created as Redis's `setTypeCreate` (`new`), `sadd` when added.
pub fn smove_to(ctx: &mut Ctx, dst: &[u8], member: &[u8]) {
    let (max, now, db) = (max_intset_entries(ctx), ctx.now_ms, ctx.db);
    let added = match ctx.db(dst).lookup(dst, AS_DECIDED, false) {
        Some(e) => set_of(e).add(member, max),
        None => {
            let mut set = Set::default();
            set.add(member, max);
            ctx.db(dst).set(dst, Value::Set(set), now, false);
            ctx.notify_new(dst);
            true
        }
    };
    if added {
        ctx.modified(db, dst);
        ctx.notify(notify::SET, "sadd", dst);
    }
}

/// Redis's `spopCommand` (without a count): propagated as SREM of the
/// member it took.
fn spop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() == 3 {
        return spop_with_count(ctx, args, r);
    }
    if args.len() > 3 {
        return r.error(err::SYNTAX);
    }
    let key = args[1];
    let mut rng = ctx.home().rng;
    let (member, emptied, rehashing) = match ctx.lookup_write::<SetKind>(key) {
        Ok(Some(e)) => {
            let set = set_of(e);
            let i = random_below(&mut rng, set.len());
            let m = set.take_at(i).expect("a position below the size");
            (m, set.is_empty(), set.take_rehash_start())
        }
        Ok(None) => return r.null(),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    ctx.home().rng = rng;
    if emptied {
        ctx.db(key).remove(key);
    } else if rehashing {
        ctx.db(key).note_rehashing_value(key);
    }
    // `modified` and `spop` under one look-up of the key's shard.
    ctx.wrote_key(key, 1, notify::SET, "spop");
    if emptied {
        ctx.notify(notify::GENERIC, "del", key);
    }
    if ctx.propagating() {
        // The member as text only when something consumes it (AOF).
        ctx.propagate_as(&[b"SREM", key, &member.to_vec()]);
    }
    reply_member(r, member.as_entry());
}

/// Redis's `spopWithCountCommand`: the whole set (then the key is deleted,
/// propagated as DEL or UNLINK), or count random members (few: popped one
/// by one; most: the remainder is drawn into a new set that replaces the
/// old one, and the rest of the old is the reply), propagated as one SREM
/// per member.
fn spop_with_count(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let count = match parse_i64(args[2]) {
        Some(n) if n >= 0 => n as u64,
        _ => return r.error("ERR value is out of range, must be positive"),
    };
    let (max, db, propagating) = (max_intset_entries(ctx), ctx.db, ctx.propagating());
    let lazy = ctx.config().others.get("lazyfree-lazy-server-del").is_some_and(|v| v == "yes");
    let mut rng = ctx.home().rng;
    let set = match ctx.lookup_write::<SetKind>(key) {
        Ok(Some(e)) => set_of(e),
        Ok(None) => return r.set(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    if count == 0 {
        return r.set(0);
    }
    let size = set.len() as u64;
    let mut srems: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut srem = |m: Member<'_>| {
        if propagating {
            srems.push(vec![b"SREM".to_vec(), key.to_vec(), m.to_vec()]);
        }
    };
    if count >= size {
        // As `sunionDiffGenericCommand` of the one set: the reply lists a
        // copy built member by member (an intset again where it can be).
        let mut copy = Set::default();
        for m in set.iter() {
            copy.add_entry(m, max);
        }
        r.set(copy.len());
        for m in copy.iter() {
            reply_member(r, m);
        }
        ctx.db(key).remove(key);
        ctx.modified(db, key);
        more_dirty(ctx, key, count as usize);
        notify_then_del(ctx, key, "spop", true);
        ctx.home().rng = rng;
        return ctx.propagate_as(&[if lazy { b"UNLINK" } else { b"DEL" }, key]);
    }
    let remaining = size - count;
    r.set(count as usize);
    if remaining * SPOP_MOVE_STRATEGY_MUL > count {
        for _ in 0..count {
            let i = random_below(&mut rng, set.len());
            let m = set.take_at(i).expect("a position below the size");
            reply_member(r, m.as_entry());
            srem(m.as_entry());
        }
    } else {
        let mut kept = Set::default();
        for _ in 0..remaining {
            let i = random_below(&mut rng, set.len());
            let m = set.take_at(i).expect("a position below the size");
            kept.add_entry(m.as_entry(), max);
        }
        for m in set.iter() {
            reply_member(r, m);
            srem(m);
        }
        // The remainder replaces the set, TTL kept (Redis's `dbOverwrite`).
        *set = kept;
    }
    if set.take_rehash_start() {
        ctx.db(key).note_rehashing_value(key);
    }
    ctx.home().rng = rng;
    ctx.modified(db, key);
    more_dirty(ctx, key, count as usize);
    ctx.notify(notify::SET, "spop", key);
    if propagating {
        ctx.propagate = crate::exec::propagate::Propagate::Many(srems);
    }
}

/// Redis's `srandmemberCommand` / `srandmemberWithCountCommand`.
fn srandmember(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 3 {
        return r.error(err::SYNTAX);
    }
    let count = if args.len() == 3 {
        match parse_i64(args[2]) {
            None => return r.error(err::NOT_INTEGER),
            Some(i64::MIN) => return r.error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
            Some(n) => Some(n),
        }
    } else {
        None
    };
    let stop = ctx.reply_bytes_stop();
    let mut rng = ctx.home().rng;
    let set = match ctx.lookup_read::<SetKind>(args[1]) {
        Ok(Some(e)) => &*set_of(e),
        Ok(None) if count.is_some() => return r.array(0),
        Ok(None) => return r.null(),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    match count {
        None => {
            let i = random_below(&mut rng, set.len());
            reply_member(r, set.get(i).expect("a position below the size"));
        }
        Some(n) => srandmember_with_count(set, n, &mut rng, r, stop),
    }
    ctx.home().rng = rng;
}

/// Draws with repetition stop once the reply reaches `stop` bytes
/// (`Ctx::reply_bytes_stop`).
fn srandmember_with_count(set: &Set, n: i64, rng: &mut u64, r: &mut Reply, stop: usize) {
    let (count, unique) = (n.unsigned_abs(), n >= 0);
    let size = set.len();
    if count == 0 {
        return r.array(0);
    }
    // Case 1: repeats allowed, each draw over the whole set, in draw order.
    if !unique || count == 1 {
        r.array(count as usize);
        for _ in 0..count {
            if r.buf.len() >= stop {
                break;
            }
            reply_member(r, set.get(random_below(rng, size)).expect("a position below the size"));
        }
        return;
    }
    // Case 2: the whole set, in its order.
    if count >= size as u64 {
        r.array(size);
        for m in set.iter() {
            reply_member(r, m);
        }
        return;
    }
    let count = count as usize;
    let positions: Vec<usize> = if count as u64 * SRANDMEMBER_SUB_STRATEGY_MUL > size as u64 {
        // Case 3: most of the set: all of it, less random members.
        let mut all: Vec<usize> = (0..size).collect();
        while all.len() > count {
            let i = random_below(rng, all.len());
            all.swap_remove(i);
        }
        all
    } else {
        // Case 4: few: random members until that many distinct.
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(count, foldhash::fast::RandomState::default());
        let mut picked = Vec::with_capacity(count);
        while picked.len() < count {
            let i = random_below(rng, size);
            if seen.insert(i) {
                picked.push(i);
            }
        }
        picked
    };
    r.array(count);
    for i in positions {
        reply_member(r, set.get(i).expect("a position below the size"));
    }
}

/// Looks `keys` up for reading, in order (hits, misses, lazy expiry); the
/// first of another type ends it with WRONGTYPE. Returns whether any was
/// missing.
fn lookup_all(ctx: &mut Ctx, keys: &[&[u8]], r: &mut Reply) -> Result<bool, ()> {
    let mut missing = false;
    for key in keys {
        match found(ctx.lookup_read::<SetKind>(key)) {
            Found::Missing => missing = true,
            Found::Set => {}
            Found::Wrong => {
                r.error(err::WRONGTYPE);
                return Err(());
            }
        }
    }
    Ok(missing)
}

/// What an intersection is for.
#[derive(Clone, Copy)]
enum InterMode<'a> {
    Reply,
    Cardinality { limit: u64 },
    Store(&'a [u8]),
}

/// Redis's `sinterGenericCommand`: the smallest set's members that every
/// other set holds, in the smallest set's order.
fn sinter_generic(ctx: &mut Ctx, keys: &[&[u8]], mode: InterMode, r: &mut Reply) {
    let Ok(missing) = lookup_all(ctx, keys, r) else { return };
    if missing {
        return match mode {
            InterMode::Reply => r.set(0),
            InterMode::Cardinality { .. } => r.int(0),
            InterMode::Store(dst) => {
                store(ctx, dst, Set::default(), "sinterstore");
                r.int(0)
            }
        };
    }
    let max = max_intset_entries(ctx);
    let mut sets: Vec<&Set> = keys.iter().map(|k| peek_set(ctx, k).expect("looked up above")).collect();
    sets.sort_by_key(|s| s.len());
    let (first, others) = (sets[0], &sets[1..]);
    let common = first.iter().filter(|&m| others.iter().all(|s| std::ptr::eq(*s, first) || s.contains_entry(m)));
    match mode {
        InterMode::Reply => {
            let members: Vec<Member<'_>> = common.collect();
            r.set(members.len());
            for m in members {
                reply_member(r, m);
            }
        }
        InterMode::Cardinality { limit } => {
            let mut n = 0u64;
            for _ in common {
                n += 1;
                if limit != 0 && n >= limit {
                    break;
                }
            }
            r.int(n as i64);
        }
        InterMode::Store(dst) => {
            let mut result = Set::default();
            for m in common {
                result.add_entry(m, max);
            }
            let n = store(ctx, dst, result, "sinterstore");
            r.int(n as i64);
        }
    }
}

fn sinter(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sinter_generic(ctx, &args[1..], InterMode::Reply, r);
}

fn sinterstore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sinter_generic(ctx, &args[2..], InterMode::Store(args[1]), r);
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`, arguments checked
/// before any key is looked up.
fn sintercard(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let numkeys = match parse_i64(args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return r.error("ERR numkeys should be greater than 0"),
    };
    if numkeys > (args.len() - 2) as u64 {
        return r.error("ERR Number of keys can't be greater than number of args");
    }
    let keys_end = 2 + numkeys as usize;
    let mut limit = 0;
    let mut j = keys_end;
    while j < args.len() {
        if eq_ic(cstr(args[j]), "limit") && j + 1 < args.len() {
            limit = match parse_i64(args[j + 1]) {
                Some(n) if n >= 0 => n as u64,
                _ => return r.error("ERR LIMIT can't be negative"),
            };
            j += 2;
        } else {
            return r.error(err::SYNTAX);
        }
    }
    sinter_generic(ctx, &args[2..keys_end], InterMode::Cardinality { limit }, r);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Diff,
}

/// Redis's `sunionDiffGenericCommand`: the result is built as a set, then
/// listed or stored. SDIFF picks Redis's algorithm (1: test each member of
/// the first set against the others; 2: add the first, remove the others),
/// since the order of additions and removals decides the stored encoding.
fn sunion_diff_generic(ctx: &mut Ctx, keys: &[&[u8]], dst: Option<&[u8]>, op: SetOp, r: &mut Reply) {
    if lookup_all(ctx, keys, r).is_err() {
        return;
    }
    let max = max_intset_entries(ctx);
    let mut sets: Vec<Option<&Set>> = keys.iter().map(|k| peek_set(ctx, k)).collect();
    let mut result = Set::default();
    match (op, sets[0]) {
        (SetOp::Union, _) => {
            for set in sets.iter().flatten() {
                for m in set.iter() {
                    result.add_entry(m, max);
                }
            }
        }
        (SetOp::Diff, None) => {}
        // The first key again: nothing is left (Redis compares the objects).
        (SetOp::Diff, Some(first)) if sets[1..].iter().flatten().any(|s| std::ptr::eq(*s, first)) => {}
        (SetOp::Diff, Some(first)) => {
            let present = sets.iter().flatten();
            let algo_one_work: usize = present.clone().count() * first.len() / 2;
            let algo_two_work: usize = present.map(|s| s.len()).sum();
            if algo_one_work <= algo_two_work {
                // Largest first: a member is likelier to be found early.
                sets[1..].sort_by_key(|s| std::cmp::Reverse(s.map_or(0, |s| s.len())));
                for m in first.iter() {
                    if !sets[1..].iter().flatten().any(|s| s.contains_entry(m)) {
                        result.add_entry(m, max);
                    }
                }
            } else {
                for m in first.iter() {
                    result.add_entry(m, max);
                }
                for set in sets[1..].iter().flatten() {
                    if result.is_empty() {
                        break;
                    }
                    for m in set.iter() {
                        result.remove_entry(m);
                    }
                }
            }
        }
    }
    match dst {
        None => {
            r.set(result.len());
            for m in result.iter() {
                reply_member(r, m);
            }
        }
        Some(dst) => {
            let event = if op == SetOp::Union { "sunionstore" } else { "sdiffstore" };
            let n = store(ctx, dst, result, event);
            r.int(n as i64);
        }
    }
}

fn sunion(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sunion_diff_generic(ctx, &args[1..], None, SetOp::Union, r);
}

fn sunionstore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sunion_diff_generic(ctx, &args[2..], Some(args[1]), SetOp::Union, r);
}

fn sdiff(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sunion_diff_generic(ctx, &args[1..], None, SetOp::Diff, r);
}

fn sdiffstore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sunion_diff_generic(ctx, &args[2..], Some(args[1]), SetOp::Diff, r);
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`: the cursor is checked
/// first, then the key, then the options (Redis's `sscanCommand` and
/// `scanGenericCommand`). An intset answers whole with cursor 0; a hash set
/// is walked by position from high to low, the cursor being the number of
/// positions left, which keeps Redis's guarantee (see `types/set.rs`).
fn sscan(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(cursor) = parse_cursor(args[2]) else {
        return r.error("ERR invalid cursor");
    };
    let set = match ctx.lookup_read::<SetKind>(args[1]) {
        Ok(Some(e)) => &*set_of(e),
        Ok(None) => {
            r.array(2);
            r.bulk(b"0");
            return r.array(0);
        }
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let (count, pattern) = match parse_scan_options(args, 3, false) {
        Ok(o) => (o.count, o.pattern),
        Err(e) => return r.error(e),
    };
    let (positions, next) = match set {
        Set::Intset(_) => (0..set.len(), 0),
        Set::Table(_) => {
            let top = if cursor == 0 { set.len() } else { (cursor as usize).min(set.len()) };
            let left = top.saturating_sub(count as usize);
            (left..top, left as u64)
        }
    };
    let mut members: Vec<Member<'_>> = positions.rev().filter_map(|p| set.get(p)).collect();
    if matches!(set, Set::Intset(_)) {
        members.reverse();
    }
    if let Some(p) = pattern {
        let mut scratch = itoa::Buffer::new();
        members.retain(|m| match m {
            Member::Str(s) => glob_match(p, s, false),
            Member::Int(v) => glob_match(p, scratch.format(*v).as_bytes(), false),
        });
    }
    r.array(2);
    r.bulk(itoa::Buffer::new().format(next).as_bytes());
    r.array(members.len());
    for m in members {
        reply_member(r, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(f: impl FnOnce(&mut Reply)) -> Vec<u8> {
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out, 2);
        f(&mut r);
        out
    }

    fn members(resp: &[u8]) -> Vec<String> {
        let text = String::from_utf8(resp.to_vec()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        lines.iter().skip(1).filter(|l| !l.starts_with('$') && !l.is_empty()).map(|l| l.to_string()).collect()
    }

    #[test]
    fn srandmember_cases_return_distinct_members() {
        let mut set = Set::default();
        for i in 0..100 {
            set.add(format!("m{i}").as_bytes(), 512);
        }
        let mut rng = 0x1234_5678_9abc_def1;
        for n in [1i64, 2, 30, 33, 34, 60, 99, 100, 150] {
            let got = members(&reply_of(|r| srandmember_with_count(&set, n, &mut rng, r, usize::MAX)));
            let unique: std::collections::BTreeSet<_> = got.iter().collect();
            assert_eq!(got.len(), (n as usize).min(100), "count {n}");
            assert_eq!(unique.len(), got.len(), "count {n}");
        }
        let got = members(&reply_of(|r| srandmember_with_count(&set, -500, &mut rng, r, usize::MAX)));
        assert_eq!(got.len(), 500);
        assert_eq!(reply_of(|r| srandmember_with_count(&set, 0, &mut rng, r, usize::MAX)), b"*0\r\n");
    }

    #[test]
    fn srandmember_is_uniform_enough() {
        // Each of 10 members drawn about 1000 times out of 10000 (case 4 and case 1).
        let mut set = Set::default();
        for i in 0..10 {
            set.add_int(i, 512);
        }
        let mut rng = 0x9E37_79B9_7F4A_7C15;
        let mut hist = [0usize; 10];
        for _ in 0..10000 {
            for m in members(&reply_of(|r| srandmember_with_count(&set, -1, &mut rng, r, usize::MAX))) {
                hist[m.parse::<usize>().unwrap()] += 1;
            }
        }
        assert!(hist.iter().all(|&h| (800..1200).contains(&h)), "{hist:?}");
    }
}
