//! Generic key commands (Redis's db.c / expire.c / object.c).

use super::lookup::{probe_entry, AnyKind};
use super::string::cstr;
use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::config::glob_match;
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::hold::{Pair, ShardMask};
use crate::shard::keyspace::xorshift;
use crate::shard::Value;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    const READ_FAST: &[&str] = &["@keyspace", "@read", "@fast"];
    const READ_SLOW: &[&str] = &["@keyspace", "@read", "@slow"];
    const WRITE_FAST: &[&str] = &["@keyspace", "@write", "@fast"];
    const WRITE_SLOW: &[&str] = &["@keyspace", "@write", "@slow"];
    let k = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1);
    vec![
        k("del", -2, WRITE, del).keys(1, -1, 1).acl(WRITE_SLOW).doc("1.0.0", "Delete a key"),
        k("unlink", -2, WRITE | FAST, unlink)
            .keys(1, -1, 1)
            .acl(WRITE_FAST)
            .doc("4.0.0", "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking."),
        k("exists", -2, READONLY | FAST, exists).keys(1, -1, 1).acl(READ_FAST).doc("1.0.0", "Determine if a key exists"),
        k("type", 2, READONLY | FAST, type_).acl(READ_FAST).doc("1.0.0", "Determine the type stored at key"),
        k("expire", -3, WRITE | FAST, expire).acl(WRITE_FAST).doc("1.0.0", "Set a key's time to live in seconds"),
        k("pexpire", -3, WRITE | FAST, pexpire).acl(WRITE_FAST).doc("2.6.0", "Set a key's time to live in milliseconds"),
        k("expireat", -3, WRITE | FAST, expireat).acl(WRITE_FAST).doc("1.2.0", "Set the expiration for a key as a UNIX timestamp"),
        k("pexpireat", -3, WRITE | FAST, pexpireat).acl(WRITE_FAST).doc("2.6.0", "Set the expiration for a key as a UNIX timestamp specified in milliseconds"),
        k("ttl", 2, READONLY | FAST, ttl).acl(READ_FAST).doc("1.0.0", "Get the time to live for a key in seconds"),
        k("pttl", 2, READONLY | FAST, pttl).acl(READ_FAST).doc("2.6.0", "Get the time to live for a key in milliseconds"),
        k("expiretime", 2, READONLY | FAST, expiretime).acl(READ_FAST).doc("7.0.0", "Get the expiration Unix timestamp for a key"),
        k("pexpiretime", 2, READONLY | FAST, pexpiretime).acl(READ_FAST).doc("7.0.0", "Get the expiration Unix timestamp for a key in milliseconds"),
        k("persist", 2, WRITE | FAST, persist).acl(WRITE_FAST).doc("2.2.0", "Remove the expiration from a key"),
        CommandSpec::new("keys", 2, READONLY, keys)
            .route(Route::All)
            .acl(&["@keyspace", "@read", "@slow", "@dangerous"])
            .doc("1.0.0", "Find all keys matching the given pattern"),
        CommandSpec::new("scan", -2, READONLY, scan).route(Route::Custom(scan_route)).acl(READ_SLOW).doc("2.8.0", "Incrementally iterate the keys space"),
        CommandSpec::new("randomkey", 1, READONLY, randomkey).route(Route::All).acl(READ_SLOW).doc("1.0.0", "Return a random key from the keyspace"),
        k("rename", 3, WRITE, rename).keys(1, 2, 1).acl(WRITE_SLOW).doc("1.0.0", "Rename a key"),
        k("renamenx", 3, WRITE | FAST, renamenx).keys(1, 2, 1).acl(WRITE_FAST).doc("1.0.0", "Rename a key, only if the new key does not exist"),
        k("copy", -3, WRITE | DENYOOM, copy).keys(1, 2, 1).acl(WRITE_SLOW).doc("6.2.0", "Copy a key"),
        k("move", 3, WRITE | FAST, move_).acl(WRITE_FAST).doc("1.0.0", "Move a key to another database"),
        k("touch", -2, READONLY | FAST, touch)
            .keys(1, -1, 1)
            .acl(READ_FAST)
            .doc("3.2.1", "Alters the last access time of a key(s). Returns the number of existing keys specified."),
        CommandSpec::new("object", -2, 0, object_help).acl(&["@slow"]).doc("2.2.3", "A container for object introspection commands"),
        CommandSpec::new("object|encoding", 3, READONLY, object_encoding)
            .keys(2, 2, 1)
            .acl(READ_SLOW)
            .doc("2.2.3", "Inspect the internal encoding of a Redis object"),
        CommandSpec::new("object|freq", 3, READONLY, object_freq)
            .keys(2, 2, 1)
            .acl(READ_SLOW)
            .doc("4.0.0", "Get the logarithmic access frequency counter of a Redis object"),
        CommandSpec::new("object|idletime", 3, READONLY, object_idletime)
            .keys(2, 2, 1)
            .acl(READ_SLOW)
            .doc("2.2.3", "Get the time since a Redis object was last accessed"),
        CommandSpec::new("object|refcount", 3, READONLY, object_refcount)
            .keys(2, 2, 1)
            .acl(READ_SLOW)
            .doc("2.2.3", "Get the number of references to the value of the key"),
        CommandSpec::new("object|help", 2, LOADING | STALE, object_help)
            .acl(&["@keyspace", "@slow"])
            .doc("6.2.0", "Show helpful text about the different subcommands"),
    ]
}

fn del(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let lazy = ctx.config().others.get("lazyfree-lazy-user-del").is_some_and(|v| v == "yes");
    del_generic(ctx, args, r, lazy);
}

/// UNLINK: as DEL, and a big value is freed in slices between commands
/// (`shard/lazyfree.rs`) instead of now.
fn unlink(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    del_generic(ctx, args, r, true);
}

fn del_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, lazy: bool) {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.expire_if_needed(k) {
            continue;
        }
        if let Some(e) = ctx.db(k).remove(k) {
            if lazy {
                ctx.shards.of(k).lazyfree.free(e.value);
            }
            ctx.modified(ctx.db, k);
            ctx.notify(notify::GENERIC, "del", k);
            n += 1;
        }
    }
    r.int(n);
}

fn exists(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut n = 0;
    for k in &args[1..] {
        let found = matches!(ctx.lookup_read_no_touch::<AnyKind>(k), Ok(Some(_)));
        n += found as i64;
    }
    r.int(n);
}

fn type_(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let found = match ctx.lookup_read_no_touch::<AnyKind>(args[1]) {
        Ok(Some(e)) => e.value.type_name(),
        _ => "none",
    };
    r.simple(found);
}

fn touch(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut n = 0;
    for k in &args[1..] {
        let found = matches!(ctx.lookup_read::<AnyKind>(k), Ok(Some(_)));
        n += found as i64;
    }
    r.int(n);
}

/// EXPIRE's NX/XX/GT/LT.
mod expire_flag {
    pub const NX: u8 = 1;
    pub const XX: u8 = 2;
    pub const GT: u8 = 4;
    pub const LT: u8 = 8;
}

/// Redis's `parseExtendedExpireArgumentsOrReply`.
fn parse_expire_flags(args: &[&[u8]]) -> Result<u8, Vec<u8>> {
    use expire_flag::*;
    let mut flags = 0;
    for &arg in &args[3..] {
        let word = cstr(arg);
        flags |= if eq_ic(word, "nx") {
            NX
        } else if eq_ic(word, "xx") {
            XX
        } else if eq_ic(word, "gt") {
            GT
        } else if eq_ic(word, "lt") {
            LT
        } else {
            let mut msg = b"ERR Unsupported option ".to_vec();
            msg.extend_from_slice(word);
            return Err(msg);
        };
    }
    if flags & NX != 0 && flags & (XX | GT | LT) != 0 {
        return Err(b"ERR NX and XX, GT or LT options at the same time are not compatible".to_vec());
    }
    if flags & GT != 0 && flags & LT != 0 {
        return Err(b"ERR GT and LT options at the same time are not compatible".to_vec());
    }
    Ok(flags)
}

/// Redis's `expireGenericCommand`. `basetime_ms` is now for EXPIRE/PEXPIRE
/// and 0 for the absolute forms.
fn expire_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, basetime_ms: i64, seconds: bool, command: &str) {
    use expire_flag::*;
    let flags = match parse_expire_flags(args) {
        Ok(f) => f,
        Err(msg) => return r.error_bytes(&msg),
    };
    let Some(mut when) = super::parse_i64(args[2]) else {
        return r.error(err::NOT_INTEGER);
    };
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return r.error(&super::string::invalid_expire_error(command));
        }
        when *= 1000;
    }
    if when > i64::MAX - basetime_ms {
        return r.error(&super::string::invalid_expire_error(command));
    }
    when += basetime_ms;
    let (key, now) = (args[1], ctx.now_ms);
    let Ok(Some(e)) = ctx.lookup_write::<AnyKind>(key) else {
        return r.int(0);
    };
    let current = e.expire_at_ms;
    let refused = (flags & NX != 0 && current != -1)
        || (flags & XX != 0 && current == -1)
        || (flags & GT != 0 && (when <= current || current == -1))
        || (flags & LT != 0 && current != -1 && when >= current);
    if refused {
        return r.int(0);
    }
    // Redis's checkAlreadyExpired: not while loading (the key keeps the
    // past time and expires after the load).
    let loading = ctx.server.loading.load(std::sync::atomic::Ordering::Relaxed);
    let db = ctx.db(key);
    if when <= now && !loading {
        db.remove(key);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.propagate_as(&[b"DEL", key]);
    } else {
        db.set_expire(key, when);
        ctx.notify(notify::GENERIC, "expire", key);
        if command != "pexpireat" && ctx.propagating() {
            // Propagated as PEXPIREAT with the absolute time, the options
            // (NX/XX/GT/LT) kept, as Redis 7.0's expireGenericCommand does.
            let when = itoa::Buffer::new().format(when).as_bytes().to_vec();
            let mut argv: Vec<&[u8]> = args.to_vec();
            argv[0] = b"PEXPIREAT";
            argv[2] = &when;
            ctx.propagate_as(&argv);
        }
    }
    ctx.modified(ctx.db, key);
    r.int(1);
}

fn expire(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    expire_generic(ctx, args, r, ctx.now_ms, true, "expire");
}

fn pexpire(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    expire_generic(ctx, args, r, ctx.now_ms, false, "pexpire");
}

fn expireat(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    expire_generic(ctx, args, r, 0, true, "expireat");
}

fn pexpireat(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    expire_generic(ctx, args, r, 0, false, "pexpireat");
}

/// Redis's `ttlGenericCommand`: -2 no key, -1 no expiry.
fn ttl_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, ms: bool, absolute: bool) {
    let now = ctx.now_ms;
    let Ok(Some(e)) = ctx.lookup_read_no_touch::<AnyKind>(args[1]) else {
        return r.int(-2);
    };
    let expire_at_ms = e.expire_at_ms;
    if expire_at_ms < 0 {
        return r.int(-1);
    }
    let left = if absolute { expire_at_ms } else { (expire_at_ms - now).max(0) };
    // Rounded to seconds in 128 bits: Redis's `(ttl+500)/1000` overflows for
    // expiries near i64::MAX and, as compiled, yields the mathematical result.
    r.int(if ms { left } else { ((left as i128 + 500) / 1000) as i64 });
}

fn ttl(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    ttl_generic(ctx, args, r, false, false);
}

fn pttl(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    ttl_generic(ctx, args, r, true, false);
}

fn expiretime(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    ttl_generic(ctx, args, r, false, true);
}

fn pexpiretime(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    ttl_generic(ctx, args, r, true, true);
}

fn persist(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_write::<AnyKind>(args[1]) {
        Ok(Some(e)) if e.expire_at_ms >= 0 => {
            ctx.db(args[1]).set_expire(args[1], -1);
            ctx.modified(ctx.db, args[1]);
            ctx.notify(notify::GENERIC, "persist", args[1]);
            r.int(1);
        }
        _ => r.int(0),
    }
}

fn keys(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let pattern = args[1];
    let all = pattern == b"*";
    let now = ctx.now_ms;
    let mut found: Vec<&[u8]> = Vec::new();
    for i in 0..ctx.shard_count {
        // One `&mut` per distinct shard; the keys borrowed stay valid.
        let db = &ctx.shard(i).dbs[ctx.db];
        for (k, e) in db.map.iter() {
            // Expired keys are skipped, not deleted (Redis's keyIsExpired).
            if (e.expire_at_ms < 0 || e.expire_at_ms > now) && (all || glob_match(pattern, k, false)) {
                found.push(k);
            }
        }
    }
    r.array(found.len());
    for k in found {
        r.bulk(k);
    }
}

/// SCAN cursors carry the shard in their high bits and, below, how many
/// positions of that shard's table remain to visit (0: start from the top).
const CURSOR_SHARD_SHIFT: u32 = 48;
const CURSOR_POSITION_MASK: u64 = (1 << CURSOR_SHARD_SHIFT) - 1;

/// Redis's `parseScanCursorOrReply`: `strtoul` over the whole argument.
pub fn parse_cursor(s: &[u8]) -> Option<u64> {
    if s.first().is_some_and(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
        return None;
    }
    if s.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// The options of SCAN / SSCAN / HSCAN / ZSCAN (Redis's
/// `scanGenericCommand`): COUNT (10 by default, at least 1), MATCH (`*`
/// matches all: no pattern), and for SCAN only, TYPE.
pub struct ScanOptions<'a> {
    pub count: i64,
    pub pattern: Option<&'a [u8]>,
    pub type_name: Option<&'a [u8]>,
}

/// Parses the options from `args[from..]`; `Err` is the error reply.
pub fn parse_scan_options<'a>(args: &[&'a [u8]], from: usize, allow_type: bool) -> Result<ScanOptions<'a>, &'static str> {
    let mut o = ScanOptions { count: 10, pattern: None, type_name: None };
    let mut i = from;
    while i < args.len() {
        let word = cstr(args[i]);
        let has_value = args.len() - i >= 2;
        if eq_ic(word, "count") && has_value {
            let n = super::parse_i64(args[i + 1]).ok_or(err::NOT_INTEGER)?;
            if n < 1 {
                return Err(err::SYNTAX);
            }
            o.count = n;
        } else if eq_ic(word, "match") && has_value {
            o.pattern = if args[i + 1] == b"*" { None } else { Some(args[i + 1]) };
        } else if allow_type && eq_ic(word, "type") && has_value {
            o.type_name = Some(cstr(args[i + 1]));
        } else {
            return Err(err::SYNTAX);
        }
        i += 2;
    }
    Ok(o)
}

fn scan_route(args: &[&[u8]], shards: usize) -> ShardMask {
    let shard = args.get(1).and_then(|a| parse_cursor(a)).map_or(0, |c| (c >> CURSOR_SHARD_SHIFT) as usize);
    ShardMask::single(if shard < shards { shard } else { 0 })
}

fn scan(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(cursor) = parse_cursor(args[1]) else {
        return r.error("ERR invalid cursor");
    };
    let ScanOptions { count, pattern, type_name } = match parse_scan_options(args, 2, true) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    let shard = (cursor >> CURSOR_SHARD_SHIFT) as usize;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut next = 0;
    if shard < ctx.shard_count {
        let (now, dbi) = (ctx.now_ms, ctx.db);
        let paused = ctx.server.pause_until(now).is_some();
        let st = ctx.shard_mut(shard);
        let position = cursor & CURSOR_POSITION_MASK;
        // Walk from high positions to low: a swap_remove only moves the last
        // (already visited) entry down, so no live key is skipped.
        let len = st.dbs[dbi].len();
        let mut left = if position == 0 { len } else { (position as usize).min(len) };
        let mut visited = 0;
        while left > 0 && visited < count {
            left -= 1;
            visited += 1;
            // An expired key is deleted and accounted for, as Redis's
            // scanGenericCommand does with expireIfNeeded; while clients
            // are paused it is only skipped (`Db::probe_read`).
            if paused && st.dbs[dbi].is_expired_at(left, now) {
                continue;
            }
            if let Some(k) = st.dbs[dbi].take_if_expired(left, now) {
                st.expired(dbi, &k);
                continue;
            }
            let (k, e) = st.dbs[dbi].map.at(left);
            if pattern.is_some_and(|p| !glob_match(p, k, false)) {
                continue;
            }
            if type_name.is_some_and(|t| !t.eq_ignore_ascii_case(e.value.type_name().as_bytes())) {
                continue;
            }
            keys.push(k.to_vec());
        }
        next = if left > 0 {
            (shard as u64) << CURSOR_SHARD_SHIFT | left as u64
        } else if shard + 1 < ctx.shard_count {
            ((shard + 1) as u64) << CURSOR_SHARD_SHIFT
        } else {
            0
        };
    }
    r.array(2);
    r.bulk(itoa::Buffer::new().format(next).as_bytes());
    r.array(keys.len());
    for k in &keys {
        r.bulk(k);
    }
}

fn randomkey(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let (now, dbi) = (ctx.now_ms, ctx.db);
    let paused = ctx.server.pause_until(now).is_some();
    let mut rng = ctx.home().rng;
    // Each try picks a shard weighted by its size, so every key is about
    // equally likely; a shard whose sampled keys were all expired is retried.
    // While clients are paused expired keys stay (`Db::probe_read`): a
    // shard whose sample found none live is left out of later tries, so
    // that its kept keys do not crowd out another shard's live ones.
    let mut found = None;
    let mut spent = vec![false; ctx.shard_count];
    let len_of = |ctx: &Ctx, spent: &[bool], i: usize| if spent[i] { 0 } else { ctx.shard(i).dbs[ctx.db].len() };
    for _ in 0..ctx.shard_count * 4 + 4 {
        let total: usize = (0..ctx.shard_count).map(|i| len_of(ctx, &spent, i)).sum();
        if total == 0 {
            break;
        }
        let mut pick = (xorshift(&mut rng) % total as u64) as usize;
        let mut shard = 0;
        while pick >= len_of(ctx, &spent, shard) {
            pick -= len_of(ctx, &spent, shard);
            shard += 1;
        }
        let st = ctx.shard_mut(shard);
        let mut expired = Vec::new();
        let k = st.dbs[dbi].random_key(now, &mut rng, &mut expired, paused);
        for key in &expired {
            st.expired(dbi, key);
        }
        if k.is_some() {
            found = k;
            break;
        }
        spent[shard] = paused;
    }
    ctx.home().rng = rng;
    match found {
        Some(k) => r.bulk(&k),
        None => r.null(),
    }
}

fn rename_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, nx: bool) {
    let (src, dst) = (args[1], args[2]);
    if !matches!(ctx.lookup_write::<AnyKind>(src), Ok(Some(_))) {
        return r.error(err::NO_SUCH_KEY);
    }
    if src == dst {
        return if nx { r.int(0) } else { r.ok() };
    }
    if matches!(ctx.lookup_write::<AnyKind>(dst), Ok(Some(_))) {
        if nx {
            return r.int(0);
        }
        ctx.db(dst).delete(dst);
    }
    // The entry moves whole (value, TTL, access time), possibly to another shard.
    let (_, entry) = ctx.db(src).remove_key(src).expect("looked up above");
    ctx.db(dst).insert_entry(dst.into(), entry);
    ctx.also_modified(ctx.db, src);
    ctx.modified(ctx.db, dst);
    // The destination is added anew (Redis's dbAdd), even over an old value.
    ctx.notify_new(dst);
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    if nx {
        r.int(1)
    } else {
        r.ok()
    }
}

fn rename(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    rename_generic(ctx, args, r, false);
}

fn renamenx(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    rename_generic(ctx, args, r, true);
}

/// A database index argument, as Redis's `getIntFromObjectOrReply` then `selectDb`.
fn parse_db_index(ctx: &Ctx, arg: &[u8]) -> Result<usize, &'static str> {
    let n = super::parse_i64(arg).ok_or(err::NOT_INTEGER)?;
    if n < i32::MIN as i64 || n > i32::MAX as i64 {
        return Err("ERR value is out of range, value must between -2147483648 and 2147483647");
    }
    if n < 0 || n as usize >= ctx.config().databases {
        return Err(err::DB_INDEX);
    }
    Ok(n as usize)
}

const SAME_OBJECT: &str = "ERR source and destination objects are the same";

fn copy(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (src, dst, now) = (args[1], args[2], ctx.now_ms);
    let mut replace = false;
    let mut dst_db = ctx.db;
    let mut j = 3;
    while j < args.len() {
        let word = cstr(args[j]);
        if eq_ic(word, "replace") {
            replace = true;
        } else if eq_ic(word, "db") && j + 1 < args.len() {
            match parse_db_index(ctx, args[j + 1]) {
                Ok(d) => dst_db = d,
                Err(e) => return r.error(e),
            }
            j += 1;
        } else {
            return r.error(err::SYNTAX);
        }
        j += 1;
    }
    if dst_db == ctx.db && src == dst {
        return r.error(SAME_OBJECT);
    }
    let (src_db, touch) = (ctx.db, ctx.may_touch());
    // Redis's lookupKeyRead for the source, lookupKeyWrite for the target;
    // their lazy expiries are accounted for once the pair is given back.
    let (mut src_expired, mut dst_expired) = (false, false);
    let (source, target) = match ctx.pair_dbs(src, src_db, dst, dst_db) {
        Pair::One(db) => {
            // Same database, so distinct keys (checked above): look them up in turn.
            let copied = probe_entry(db, src, now, touch, &mut src_expired).map(|e| copy_entry(e, now));
            let exists = copied.is_some() && probe_entry(db, dst, now, touch, &mut dst_expired).is_some();
            (copied, exists)
        }
        Pair::Two(from, to) => {
            let copied = probe_entry(from, src, now, touch, &mut src_expired).map(|e| copy_entry(e, now));
            let exists = copied.is_some() && probe_entry(to, dst, now, touch, &mut dst_expired).is_some();
            (copied, exists)
        }
    };
    if src_expired {
        ctx.shards.of(src).expired(src_db, src);
    }
    if dst_expired {
        ctx.shards.of(dst).expired(dst_db, dst);
    }
    ctx.hit(src, source.is_some());
    let Some(copied) = source else {
        return r.int(0);
    };
    if target && !replace {
        return r.int(0);
    }
    copy_write(ctx, dst, dst_db, target, copied);
    r.int(1);
}

/// COPY's look at one of its keys on the key's own shard (a two-shard hop,
/// `network::rounds_move`): Redis's lookupKeyRead for the `source` (lazy
/// expiry, hit or miss) and lookupKeyWrite for the target (lazy expiry):
/// whether it exists, and for the source a copy of its entry.
pub(crate) fn copy_look(ctx: &mut Ctx, key: &[u8], source: bool) -> (bool, Option<crate::shard::Entry>) {
    let (db, now, touch) = (ctx.db, ctx.now_ms, ctx.may_touch());
    let mut expired = false;
    let found = probe_entry(ctx.db(key), key, now, touch, &mut expired).map(|e| source.then(|| copy_entry(e, now)));
    if expired {
        ctx.shards.of(key).expired(db, key);
    }
    if source {
        ctx.hit(key, found.is_some());
    }
    (found.is_some(), found.flatten())
}

/// COPY's write (also on the destination's own shard, for a two-shard
/// hop): the copy at `dst` of database `db` in place of what `exists`
/// there (REPLACE), made known and notified.
pub(crate) fn copy_write(ctx: &mut Ctx, dst: &[u8], db: usize, exists: bool, copied: crate::shard::Entry) {
    let target = ctx.db_at(dst, db);
    if exists {
        target.delete(dst);
    }
    target.insert_entry(dst.into(), copied);
    ctx.modified(db, dst);
    ctx.notify_in(db, notify::NEW, "new", dst);
    ctx.notify_in(db, notify::GENERIC, "copy_to", dst);
}

fn move_(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let dst_db = match parse_db_index(ctx, args[2]) {
        Ok(d) => d,
        Err(e) => return r.error(e),
    };
    if dst_db == ctx.db {
        return r.error(SAME_OBJECT);
    }
    if !matches!(ctx.lookup_write::<AnyKind>(key), Ok(Some(_))) {
        return r.int(0);
    }
    if matches!(ctx.lookup_write_in::<AnyKind>(dst_db, key), Ok(Some(_))) {
        return r.int(0);
    }
    let (k, entry) = ctx.db(key).remove_key(key).expect("looked up above");
    ctx.db_at(key, dst_db).insert_key(k, entry);
    ctx.also_modified(ctx.db, key);
    ctx.modified(dst_db, key);
    ctx.notify_in(dst_db, notify::NEW, "new", key);
    ctx.notify(notify::GENERIC, "move_from", key);
    ctx.notify_in(dst_db, notify::GENERIC, "move_to", key);
    r.int(1);
}

/// Whether the maxmemory policy is an LFU one, and whether small integers
/// are shared objects (Redis shares 0..9999 unless an LRU/LFU policy with a
/// maxmemory limit needs per-object access data).
fn memory_policy(ctx: &Ctx) -> (bool, bool) {
    let config = ctx.config();
    let policy = config.others.get("maxmemory-policy").map_or("noeviction", |s| s.as_str());
    let lfu = policy.contains("lfu");
    let per_object = lfu || policy.contains("lru");
    let maxmemory = config.others.get("maxmemory").map_or(0, |m| crate::config::table::parse_memory(m).unwrap_or(0));
    (lfu, maxmemory == 0 || !per_object)
}

const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// A copy is a new object: its own access time, the source's TTL.
fn copy_entry(e: &crate::shard::Entry, now: i64) -> crate::shard::Entry {
    crate::shard::Entry { value: e.value.clone(), expire_at_ms: e.expire_at_ms, access_ms: crate::shard::lfu::fresh(now) }
}

/// OBJECT subcommands look the key up without touching its access time,
/// and a miss is not notified.
fn object_lookup<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Option<&'c mut crate::shard::Entry> {
    ctx.lookup_read_no_notify::<AnyKind>(key).ok().flatten()
}

fn object_encoding(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match object_lookup(ctx, args[2]) {
        Some(e) => r.bulk(e.value.encoding().as_bytes()),
        None => r.null(),
    }
}

fn object_freq(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (lfu, now) = (memory_policy(ctx).0, ctx.now_ms);
    let Some(e) = object_lookup(ctx, args[2]) else {
        return r.null();
    };
    if !lfu {
        return r.error(LFU_NOT_SELECTED);
    }
    r.int(crate::shard::lfu::counter(e.access_ms, now) as i64);
}

fn object_idletime(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (lfu, now) = (memory_policy(ctx).0, ctx.now_ms);
    let Some(e) = object_lookup(ctx, args[2]) else {
        return r.null();
    };
    if lfu {
        return r.error(LFU_SELECTED);
    }
    // Redis's LRU clock ticks in whole seconds.
    r.int((now / 1000 - e.access_ms / 1000).max(0));
}

fn object_refcount(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let shares_integers = memory_policy(ctx).1;
    let Some(e) = object_lookup(ctx, args[2]) else {
        return r.null();
    };
    let shared = matches!(e.value, Value::Int(n) if (0..10000).contains(&n)) && shares_integers;
    r.int(if shared { i32::MAX as i64 } else { 1 });
}

fn object_help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    const HELP: &[&str] = &[
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ];
    r.array(HELP.len());
    for line in HELP {
        r.simple(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_parsing_as_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+0"), Some(0));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b" 0"), None);
        assert_eq!(parse_cursor(b"0 "), None);
        assert_eq!(parse_cursor(b"-"), None);
        assert_eq!(parse_cursor(b"abc"), None);
    }

    #[test]
    fn expire_flag_conflicts() {
        let parse = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
            parse_expire_flags(&args).map_err(|e| String::from_utf8(e).unwrap())
        };
        assert_eq!(parse("expire k 1 nx"), Ok(expire_flag::NX));
        assert_eq!(parse("expire k 1 gt xx"), Ok(expire_flag::GT | expire_flag::XX));
        assert_eq!(parse("expire k 1 nx gt").unwrap_err(), "ERR NX and XX, GT or LT options at the same time are not compatible");
        assert_eq!(parse("expire k 1 lt gt").unwrap_err(), "ERR GT and LT options at the same time are not compatible");
        assert_eq!(parse("expire k 1 foo").unwrap_err(), "ERR Unsupported option foo");
    }
}
