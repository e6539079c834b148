//! String commands (Redis's t_string.c).
//!
//! Every handler follows Redis's order of checks exactly (option syntax,
//! then argument values, then the key), because the order decides which
//! error a client sees when several things are wrong at once.

pub(crate) mod float80;

use super::lookup::{AnyKind, StringKind, WrongType};
use super::{err, flags::*, CommandSpec, Ctx};
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::keyspace::canonical_int;
use crate::shard::Value;
use crate::util::eq_ic;
use float80::F80;

pub fn commands() -> Vec<CommandSpec> {
    const READ_FAST: &[&str] = &["@read", "@string", "@fast"];
    const READ_SLOW: &[&str] = &["@read", "@string", "@slow"];
    const WRITE_FAST: &[&str] = &["@write", "@string", "@fast"];
    const WRITE_SLOW: &[&str] = &["@write", "@string", "@slow"];
    let s = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("string");
    vec![
        s("get", 2, READONLY | FAST, get).acl(READ_FAST).doc("1.0.0", "Get the value of a key"),
        s("set", -3, WRITE | DENYOOM, set).acl(WRITE_SLOW).doc("1.0.0", "Set the string value of a key"),
        s("setnx", 3, WRITE | DENYOOM | FAST, setnx).acl(WRITE_FAST).doc("1.0.0", "Set the value of a key, only if the key does not exist"),
        s("setex", 4, WRITE | DENYOOM, setex).acl(WRITE_SLOW).doc("2.0.0", "Set the value and expiration of a key"),
        s("psetex", 4, WRITE | DENYOOM, psetex).acl(WRITE_SLOW).doc("2.6.0", "Set the value and expiration in milliseconds of a key"),
        s("getset", 3, WRITE | DENYOOM | FAST, getset).acl(WRITE_FAST).doc("1.0.0", "Set the string value of a key and return its old value"),
        s("getdel", 2, WRITE | FAST, getdel).acl(WRITE_FAST).doc("6.2.0", "Get the value of a key and delete the key"),
        s("getex", -2, WRITE | FAST, getex).acl(WRITE_FAST).doc("6.2.0", "Get the value of a key and optionally set its expiration"),
        s("mget", -2, READONLY | FAST, mget).keys(1, -1, 1).acl(READ_FAST).doc("1.0.0", "Get the values of all the given keys"),
        s("mset", -3, WRITE | DENYOOM, mset).keys(1, -1, 2).acl(WRITE_SLOW).doc("1.0.1", "Set multiple keys to multiple values"),
        s("msetnx", -3, WRITE | DENYOOM, msetnx)
            .keys(1, -1, 2)
            .acl(WRITE_SLOW)
            .doc("1.0.1", "Set multiple keys to multiple values, only if none of the keys exist"),
        s("incr", 2, WRITE | DENYOOM | FAST, incr).acl(WRITE_FAST).doc("1.0.0", "Increment the integer value of a key by one"),
        s("decr", 2, WRITE | DENYOOM | FAST, decr).acl(WRITE_FAST).doc("1.0.0", "Decrement the integer value of a key by one"),
        s("incrby", 3, WRITE | DENYOOM | FAST, incrby).acl(WRITE_FAST).doc("1.0.0", "Increment the integer value of a key by the given amount"),
        s("decrby", 3, WRITE | DENYOOM | FAST, decrby).acl(WRITE_FAST).doc("1.0.0", "Decrement the integer value of a key by the given number"),
        s("incrbyfloat", 3, WRITE | DENYOOM | FAST, incrbyfloat).acl(WRITE_FAST).doc("2.6.0", "Increment the float value of a key by the given amount"),
        s("append", 3, WRITE | DENYOOM | FAST, append).acl(WRITE_FAST).doc("2.0.0", "Append a value to a key"),
        s("strlen", 2, READONLY | FAST, strlen).acl(READ_FAST).doc("2.2.0", "Get the length of the value stored in a key"),
        s("getrange", 4, READONLY, getrange).acl(READ_SLOW).doc("2.4.0", "Get a substring of the string stored at a key"),
        s("setrange", 4, WRITE | DENYOOM, setrange).acl(WRITE_SLOW).doc("2.2.0", "Overwrite part of a string at key starting at the specified offset"),
        s("substr", 4, READONLY, getrange).acl(READ_SLOW).doc("1.0.0", "Get a substring of the string stored at a key"),
        s("lcs", -3, READONLY, lcs).keys(1, 2, 1).acl(READ_SLOW).doc("7.0.0", "Find longest common substring"),
    ]
}

/// The bytes of a string value (integers formatted into `scratch`), as a
/// `StringKind` lookup returned it. Exhaustive on purpose: a new value type
/// must decide here (and in `StringKind::holds`).
#[inline]
pub fn string_bytes<'a>(v: &'a Value, scratch: &'a mut itoa::Buffer) -> &'a [u8] {
    match v {
        Value::Int(n) => scratch.format(*n).as_bytes(),
        Value::Str { bytes, .. } => bytes,
        other => other.as_bytes(scratch),
    }
}

/// Turns a string value into a modifiable `raw` string (Redis's
/// `dbUnshareStringValue`): integers become their decimal text.
pub fn make_raw(v: &mut Value) -> &mut Vec<u8> {
    if let Value::Int(n) = *v {
        *v = Value::Str { bytes: itoa::Buffer::new().format(n).as_bytes().to_vec(), raw: true };
    }
    match v {
        Value::Str { bytes, raw } => {
            *raw = true;
            bytes
        }
        _ => unreachable!("make_raw of a {}", v.type_name()),
    }
}

/// Redis treats option words as C strings: an embedded NUL ends the word.
#[inline]
pub fn cstr(arg: &[u8]) -> &[u8] {
    match memchr::memchr(0, arg) {
        Some(i) => &arg[..i],
        None => arg,
    }
}

pub fn invalid_expire_error(command: &str) -> String {
    format!("ERR invalid expire time in '{}' command", command)
}

/// SET / GETEX option flags (Redis's OBJ_SET_* / OBJ_* flags).
mod opt {
    pub const NX: u32 = 1 << 0;
    pub const XX: u32 = 1 << 1;
    pub const GET: u32 = 1 << 2;
    pub const KEEPTTL: u32 = 1 << 3;
    pub const PERSIST: u32 = 1 << 4;
    pub const EX: u32 = 1 << 5;
    pub const PX: u32 = 1 << 6;
    pub const EXAT: u32 = 1 << 7;
    pub const PXAT: u32 = 1 << 8;
    pub const ANY_EXPIRE: u32 = EX | PX | EXAT | PXAT;
}

struct ExtendedOptions<'a> {
    flags: u32,
    expire: Option<&'a [u8]>,
}

/// Redis's `parseExtendedStringArgumentsOrReply` for SET (`is_set`) and
/// GETEX. `None` means a syntax error. A repeated expire option is allowed
/// (the last one wins), a conflicting one is not.
fn parse_extended<'a>(args: &[&'a [u8]], is_set: bool) -> Option<ExtendedOptions<'a>> {
    use opt::*;
    let mut flags = 0;
    let mut expire = None;
    let mut j = if is_set { 3 } else { 2 };
    while j < args.len() {
        let word = cstr(args[j]);
        let has_next = j + 1 < args.len();
        // Each expire option excludes the others and KEEPTTL/PERSIST, not itself.
        let expire_option = [("ex", EX), ("px", PX), ("exat", EXAT), ("pxat", PXAT)]
            .into_iter()
            .find(|&(name, flag)| eq_ic(word, name) && flags & (KEEPTTL | PERSIST | (ANY_EXPIRE & !flag)) == 0 && has_next);
        if is_set && eq_ic(word, "nx") && flags & XX == 0 {
            flags |= NX;
        } else if is_set && eq_ic(word, "xx") && flags & NX == 0 {
            flags |= XX;
        } else if is_set && eq_ic(word, "get") {
            flags |= GET;
        } else if is_set && eq_ic(word, "keepttl") && flags & (PERSIST | ANY_EXPIRE) == 0 {
            flags |= KEEPTTL;
        } else if !is_set && eq_ic(word, "persist") && flags & (ANY_EXPIRE | KEEPTTL) == 0 {
            flags |= PERSIST;
        } else if let Some((_, flag)) = expire_option {
            flags |= flag;
            expire = Some(args[j + 1]);
            j += 1;
        } else {
            return None;
        }
        j += 1;
    }
    Some(ExtendedOptions { flags, expire })
}

/// The absolute expiry in ms for an EX/PX/EXAT/PXAT argument, with Redis's
/// checks: an integer, positive, no overflow after unit conversion and after
/// adding the current time.
fn expire_at_ms(now_ms: i64, arg: &[u8], flags: u32, command: &str) -> Result<i64, String> {
    let Some(n) = super::parse_i64(arg) else {
        return Err(err::NOT_INTEGER.into());
    };
    let seconds = flags & (opt::EX | opt::EXAT) != 0;
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(invalid_expire_error(command));
    }
    let mut when = if seconds { n * 1000 } else { n };
    if flags & (opt::EX | opt::PX) != 0 {
        // Redis adds with C signed overflow, which wraps on every target it
        // runs on; the wrapped (negative) result is then rejected.
        when = when.wrapping_add(now_ms);
    }
    if when <= 0 {
        return Err(invalid_expire_error(command));
    }
    Ok(when)
}

/// The owning shard of `key`, the client's db index and the command's time:
/// the shard's db and statistics borrowable apart, so the hot commands hash
/// the key once instead of once per `ctx` call.
#[inline]
fn owner<'c>(ctx: &'c mut Ctx, key: &[u8]) -> (&'c mut crate::shard::ShardState, usize, i64) {
    (ctx.shards.of(key), ctx.db, ctx.now_ms)
}

fn get(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    reply_get_inline(ctx, args[1], r);
}

/// GET's reply for `key`, shared by SET ... GET, GETSET and GETDEL: the
/// string, the null, or WRONGTYPE; counts the keyspace hit or miss (a key of
/// the wrong type is a hit, as in Redis). Returns None after WRONGTYPE, else
/// whether the key existed.
#[inline(never)]
fn reply_get(ctx: &mut Ctx, key: &[u8], r: &mut Reply) -> Option<bool> {
    reply_get_inline(ctx, key, r)
}

/// `reply_get`, inlined into GET's handler: GET's second call per command
/// (~10 instructions a GET at -P 1).
#[inline(always)]
fn reply_get_inline(ctx: &mut Ctx, key: &[u8], r: &mut Reply) -> Option<bool> {
    match ctx.lookup_read::<StringKind>(key) {
        Ok(Some(e)) => {
            r.bulk(string_bytes(&e.value, &mut itoa::Buffer::new()));
            Some(true)
        }
        Ok(None) => {
            r.null();
            Some(false)
        }
        Err(WrongType) => {
            r.error(err::WRONGTYPE);
            None
        }
    }
}

/// What `set_generic` replies when the value was set / when NX/XX aborted it.
#[derive(Clone, Copy)]
enum SetReplies {
    /// `+OK` / null.
    Ok,
    /// `:1` / `:0` (SETNX).
    Int,
}

/// Redis's `setGenericCommand`.
#[allow(clippy::too_many_arguments)]
fn set_generic(ctx: &mut Ctx, r: &mut Reply, flags: u32, key: &[u8], value: &[u8], expire: Option<&[u8]>, command: &str, replies: SetReplies) {
    let when = match expire {
        Some(arg) => match expire_at_ms(ctx.now_ms, arg, flags, command) {
            Ok(w) => Some(w),
            Err(e) => return r.error(&e),
        },
        None => None,
    };
    let now = ctx.now_ms;
    if flags & opt::GET != 0 && reply_get(ctx, key, r).is_none() {
        return;
    }
    let found = matches!(ctx.lookup_write::<AnyKind>(key), Ok(Some(_)));
    if (flags & opt::NX != 0 && found) || (flags & opt::XX != 0 && !found) {
        if flags & opt::GET == 0 {
            match replies {
                SetReplies::Ok => r.null(),
                SetReplies::Int => r.int(0),
            }
        }
        return;
    }
    let db = ctx.db(key);
    let stored = db.set(key, Value::from_bytes(value), now, flags & opt::KEEPTTL != 0);
    if let Some(when) = when {
        db.set_expire(key, when);
    }
    ctx.modified(ctx.db, key);
    ctx.stored(key, stored);
    ctx.notify(notify::STRING, "set", key);
    if when.is_some() {
        ctx.notify(notify::GENERIC, "expire", key);
    }
    if when.is_some() && ctx.propagating() {
        // Redis 7.0 propagates any expiry as an absolute time in
        // milliseconds, so that a replay sets the same one (7.0.15 rewrites
        // a PXAT too: `SET k v PXAT ms`, options such as NX or GET dropped).
        let when = itoa::Buffer::new().format(when.unwrap_or_default()).as_bytes().to_vec();
        ctx.propagate_as(&[b"SET", key, value, b"PXAT", &when]);
    }
    if flags & opt::GET == 0 {
        match replies {
            SetReplies::Ok => r.ok(),
            SetReplies::Int => r.int(1),
        }
    }
}

/// SET's store without options (and MSET's, pair by pair): the value, the
/// `new` event of an added key (or `expired` then `new`), the write, `set`.
/// `in_place`: see `Db::set_bytes`.
#[inline]
fn store_plain(shard: &mut crate::shard::ShardState, db: usize, key: &[u8], value: &[u8], now: i64, in_place: bool) {
    let stored = shard.dbs[db].set_bytes(key, value, now, in_place);
    shard.stored(db, key, stored);
    shard.modified(db, key);
    shard.notify(db, notify::STRING, "set", key);
}

fn set(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() == 3 {
        // The common case without options: no parsing, no expiry.
        let in_place = ctx.may_touch();
        let (shard, db, now) = owner(ctx, args[1]);
        store_plain(shard, db, args[1], args[2], now, in_place);
        return r.ok();
    }
    let Some(o) = parse_extended(args, true) else {
        return r.error(err::SYNTAX);
    };
    set_generic(ctx, r, o.flags, args[1], args[2], o.expire, "set", SetReplies::Ok);
}

fn setnx(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    set_generic(ctx, r, opt::NX, args[1], args[2], None, "setnx", SetReplies::Int);
}

fn setex(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    set_generic(ctx, r, opt::EX, args[1], args[3], Some(args[2]), "setex", SetReplies::Ok);
}

fn psetex(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    set_generic(ctx, r, opt::PX, args[1], args[3], Some(args[2]), "psetex", SetReplies::Ok);
}

fn getset(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (key, now) = (args[1], ctx.now_ms);
    if reply_get(ctx, key, r).is_none() {
        return;
    }
    let stored = ctx.db(key).set(key, Value::from_bytes(args[2]), now, false);
    ctx.modified(ctx.db, key);
    ctx.stored(key, stored);
    ctx.notify(notify::STRING, "set", key);
    ctx.propagate_as(&[b"SET", key, args[2]]);
}

fn getdel(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    if reply_get(ctx, key, r) != Some(true) {
        return;
    }
    ctx.db(key).remove(key);
    ctx.modified(ctx.db, key);
    ctx.notify(notify::GENERIC, "del", key);
    ctx.propagate_as(&[b"DEL", key]);
}

fn getex(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(o) = parse_extended(args, false) else {
        return r.error(err::SYNTAX);
    };
    let (key, now) = (args[1], ctx.now_ms);
    let e = match ctx.lookup_read::<StringKind>(key) {
        Ok(Some(e)) => e,
        Ok(None) => return r.null(),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    // The expiry is validated only once the key is known to be a string.
    let when = match o.expire {
        Some(arg) => match expire_at_ms(now, arg, o.flags, "getex") {
            Ok(w) => Some(w),
            Err(e) => return r.error(&e),
        },
        None => None,
    };
    r.bulk(string_bytes(&e.value, &mut itoa::Buffer::new()));
    let had_ttl = e.expire_at_ms >= 0;
    if let Some(when) = when {
        let db = ctx.db(key);
        if o.flags & (opt::EXAT | opt::PXAT) != 0 && when <= now {
            // An absolute time already past deletes the key, as Redis does.
            db.remove(key);
            ctx.notify(notify::GENERIC, "del", key);
            ctx.propagate_as(&[b"DEL", key]);
        } else {
            db.set_expire(key, when);
            ctx.notify(notify::GENERIC, "expire", key);
            if ctx.propagating() {
                ctx.propagate_as(&[b"PEXPIREAT", key, itoa::Buffer::new().format(when).as_bytes()]);
            }
        }
        ctx.modified(ctx.db, key);
    } else if o.flags & opt::PERSIST != 0 && had_ttl {
        ctx.db(key).set_expire(key, -1);
        ctx.modified(ctx.db, key);
        ctx.notify(notify::GENERIC, "persist", key);
        ctx.propagate_as(&[b"PERSIST", key]);
    }
}

fn mget(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    r.array(args.len() - 1);
    let mut b = itoa::Buffer::new();
    for &key in &args[1..] {
        match ctx.lookup_read::<StringKind>(key) {
            Ok(Some(e)) => r.bulk(string_bytes(&e.value, &mut b)),
            // A key of another type reads as missing (Redis's mgetCommand).
            Ok(None) | Err(WrongType) => r.null(),
        }
    }
}

fn mset_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, nx: bool) {
    if args.len().is_multiple_of(2) {
        return r.error(&super::arity_error(if nx { "msetnx" } else { "mset" }));
    }
    if nx && args[1..].chunks(2).any(|kv| matches!(ctx.lookup_write::<AnyKind>(kv[0]), Ok(Some(_)))) {
        return r.int(0);
    }
    let in_place = ctx.may_touch();
    for kv in args[1..].chunks(2) {
        let (shard, db, now) = owner(ctx, kv[0]);
        store_plain(shard, db, kv[0], kv[1], now, in_place);
    }
    if nx {
        r.int(1)
    } else {
        r.ok()
    }
}

fn mset(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    mset_generic(ctx, args, r, false);
}

fn msetnx(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    mset_generic(ctx, args, r, true);
}

/// The integer a string value holds, as Redis's `getLongLongFromObject`.
#[inline]
fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Str { bytes, .. } => canonical_int(bytes),
        _ => None,
    }
}

/// Redis's `incrDecrCommand`: the TTL is kept.
fn incr_decr(ctx: &mut Ctx, key: &[u8], by: i64, r: &mut Reply) {
    let now = ctx.now_ms;
    let new = match ctx.lookup_write::<StringKind>(key) {
        Ok(Some(e)) => {
            let Some(old) = value_i64(&e.value) else {
                return r.error(err::NOT_INTEGER);
            };
            let Some(new) = old.checked_add(by) else {
                return r.error(err::OVERFLOW);
            };
            e.value = Value::Int(new);
            new
        }
        Ok(None) => {
            ctx.db(key).set(key, Value::Int(by), now, false);
            ctx.notify_new(key);
            by
        }
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    ctx.modified(ctx.db, key);
    ctx.notify(notify::STRING, "incrby", key);
    r.int(new);
}

fn incr(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    incr_decr(ctx, args[1], 1, r);
}

fn decr(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    incr_decr(ctx, args[1], -1, r);
}

fn incrby(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match super::parse_i64(args[2]) {
        Some(by) => incr_decr(ctx, args[1], by, r),
        None => r.error(err::NOT_INTEGER),
    }
}

fn decrby(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match super::parse_i64(args[2]) {
        Some(i64::MIN) => r.error("ERR decrement would overflow"),
        Some(by) => incr_decr(ctx, args[1], -by, r),
        None => r.error(err::NOT_INTEGER),
    }
}

fn incrbyfloat(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (key, now) = (args[1], ctx.now_ms);
    let current = match ctx.lookup_write::<StringKind>(key) {
        Ok(None) => Some(F80::from_i64(0)),
        Ok(Some(e)) => match &e.value {
            Value::Int(n) => Some(F80::from_i64(*n)),
            Value::Str { bytes, .. } => F80::parse(bytes),
            _ => unreachable!("a StringKind lookup returned a {}", e.value.type_name()),
        },
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let (Some(current), Some(by)) = (current, F80::parse(args[2])) else {
        return r.error(err::NOT_FLOAT);
    };
    let sum = current.add(by);
    if !sum.is_finite() {
        return r.error("ERR increment would produce NaN or Infinity");
    }
    let text = sum.to_human().into_bytes();
    r.bulk(&text);
    // The printed result, not the increment: a replay gives the same
    // string whatever the float arithmetic of the loader. (Nothing fails
    // from here on: the write below always happens.)
    ctx.propagate_as(&[b"SET", key, &text, b"KEEPTTL"]);
    // Redis stores the printed text as a plain string (never `int`), keeping the TTL.
    let value = Value::Str { bytes: text, raw: false };
    let db = ctx.db(key);
    match db.get(key, now) {
        Some(e) => e.value = value,
        None => {
            db.set(key, value, now, false);
            ctx.notify_new(key);
        }
    }
    ctx.modified(ctx.db, key);
    ctx.notify(notify::STRING, "incrbyfloat", key);
}

/// Redis's `checkStringLength`: the result may not exceed proto-max-bulk-len.
fn check_string_length(max: i64, size: i64, append: i64) -> Result<(), &'static str> {
    match size.checked_add(append) {
        Some(total) if total <= max => Ok(()),
        _ => Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
    }
}

fn string_len(v: &Value) -> usize {
    match v {
        Value::Int(n) => itoa::Buffer::new().format(*n).len(),
        Value::Str { bytes, .. } => bytes.len(),
        _ => 0,
    }
}

fn append(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (key, max, now) = (args[1], ctx.config().proto_max_bulk_len, ctx.now_ms);
    let total = match ctx.lookup_write::<StringKind>(key) {
        Ok(None) => {
            ctx.db(key).set(key, Value::from_bytes(args[2]), now, false);
            ctx.notify_new(key);
            args[2].len()
        }
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(Some(e)) => {
            if let Err(msg) = check_string_length(max, string_len(&e.value) as i64, args[2].len() as i64) {
                return r.error(msg);
            }
            let bytes = make_raw(&mut e.value);
            bytes.extend_from_slice(args[2]);
            bytes.len()
        }
    };
    ctx.modified(ctx.db, key);
    ctx.notify(notify::STRING, "append", key);
    r.int(total as i64);
}

fn strlen(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<StringKind>(args[1]) {
        Ok(Some(e)) => r.int(string_len(&e.value) as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

/// The byte range GETRANGE returns for `start..=end` over `len` bytes.
pub fn getrange_bounds(mut start: i64, mut end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end {
        return None;
    }
    Some((start as usize, end as usize + 1))
}

fn getrange(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (Some(start), Some(end)) = (super::parse_i64(args[2]), super::parse_i64(args[3])) else {
        return r.error(err::NOT_INTEGER);
    };
    let e = match ctx.lookup_read::<StringKind>(args[1]) {
        Ok(Some(e)) => e,
        Ok(None) => return r.bulk(b""),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let mut b = itoa::Buffer::new();
    let s = string_bytes(&e.value, &mut b);
    match getrange_bounds(start, end, s.len()) {
        Some((from, to)) => r.bulk(&s[from..to]),
        None => r.bulk(b""),
    }
}

fn setrange(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (key, value, max) = (args[1], args[3], ctx.config().proto_max_bulk_len);
    let Some(offset) = super::parse_i64(args[2]) else {
        return r.error(err::NOT_INTEGER);
    };
    if offset < 0 {
        return r.error("ERR offset is out of range");
    }
    let now = ctx.now_ms;
    let bytes = match ctx.lookup_write::<StringKind>(key) {
        Ok(None) => {
            // Nothing to write creates nothing.
            if value.is_empty() {
                return r.int(0);
            }
            if let Err(msg) = check_string_length(max, offset, value.len() as i64) {
                return r.error(msg);
            }
            ctx.db(key).set(key, Value::Str { bytes: Vec::new(), raw: true }, now, false);
            ctx.notify_new(key);
            make_raw(&mut ctx.db(key).lookup(key, now, false).expect("just set").value)
        }
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(Some(e)) => {
            if value.is_empty() {
                return r.int(string_len(&e.value) as i64);
            }
            if let Err(msg) = check_string_length(max, offset, value.len() as i64) {
                return r.error(msg);
            }
            make_raw(&mut e.value)
        }
    };
    let offset = offset as usize;
    if bytes.len() < offset + value.len() {
        bytes.resize(offset + value.len(), 0);
    }
    bytes[offset..offset + value.len()].copy_from_slice(value);
    let len = bytes.len();
    ctx.modified(ctx.db, key);
    ctx.notify(notify::STRING, "setrange", key);
    r.int(len as i64);
}

/// One run of LCS IDX: the matched ranges in `a` and `b` (inclusive).
#[derive(Debug, PartialEq, Eq)]
pub struct LcsMatch {
    pub a: (u32, u32),
    pub b: (u32, u32),
    pub len: u32,
}

/// Longest common subsequence of `a` and `b` by Redis's dynamic
/// programming table, walked back from the end exactly as Redis walks it,
/// so the same ranges come out in the same order. Returns (length, the
/// LCS string, the ranges of at least `min_len` bytes).
pub fn lcs_compute(a: &[u8], b: &[u8], min_len: u64) -> (u32, Vec<u8>, Vec<LcsMatch>) {
    let (alen, blen) = (a.len(), b.len());
    let width = blen + 1;
    let mut table = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] =
                if a[i - 1] == b[j - 1] { table[(i - 1) * width + j - 1] + 1 } else { table[(i - 1) * width + j].max(table[i * width + j - 1]) };
        }
    }
    let total = table[alen * width + blen];
    let mut result = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let mut idx = total as usize;
    let (mut i, mut j) = (alen, blen);
    // `arange_start == alen` marks "no range in progress", as in Redis.
    let none = alen as u32;
    let (mut arange_start, mut arange_end, mut brange_start, mut brange_end) = (none, 0u32, 0u32, 0u32);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if arange_start == none {
                arange_start = i as u32 - 1;
                arange_end = i as u32 - 1;
                brange_start = j as u32 - 1;
                brange_end = j as u32 - 1;
            } else if arange_start == i as u32 && brange_start == j as u32 {
                arange_start -= 1;
                brange_start -= 1;
            } else {
                emit = true;
            }
            if arange_start == 0 || brange_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            let up = table[(i - 1) * width + j];
            let left = table[i * width + j - 1];
            if up > left {
                i -= 1;
            } else {
                j -= 1;
            }
            if arange_start != none {
                emit = true;
            }
        }
        let match_len = arange_end.wrapping_sub(arange_start).wrapping_add(1);
        if emit {
            if min_len == 0 || match_len as u64 >= min_len {
                matches.push(LcsMatch { a: (arange_start, arange_end), b: (brange_start, brange_end), len: match_len });
            }
            arange_start = none;
        }
    }
    (total, result, matches)
}

fn lcs(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut load = |key: &[u8]| -> Result<Vec<u8>, WrongType> {
        Ok(match ctx.lookup_read::<StringKind>(key)? {
            Some(e) => string_bytes(&e.value, &mut itoa::Buffer::new()).to_vec(),
            None => Vec::new(),
        })
    };
    let (a, b) = match (load(args[1]), load(args[2])) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return r.error("ERR The specified keys must contain string values"),
    };
    let (mut idx, mut len, mut with_len) = (false, false, false);
    let mut min_len: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let word = cstr(args[j]);
        let more = args.len() - 1 - j;
        if eq_ic(word, "idx") {
            idx = true;
        } else if eq_ic(word, "len") {
            len = true;
        } else if eq_ic(word, "withmatchlen") {
            with_len = true;
        } else if eq_ic(word, "minmatchlen") && more > 0 {
            let Some(n) = super::parse_i64(args[j + 1]) else {
                return r.error(err::NOT_INTEGER);
            };
            min_len = n.max(0);
            j += 1;
        } else {
            return r.error(err::SYNTAX);
        }
        j += 1;
    }
    if idx && len {
        return r.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return r.error("ERR String too long for LCS");
    }
    let table_bytes = (a.len() as u64 + 1) * (b.len() as u64 + 1) * 4;
    if table_bytes > ctx.config().proto_max_bulk_len as u64 {
        return r.error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let (total, string, matches) = lcs_compute(&a, &b, min_len as u64);
    if idx {
        r.map(2);
        r.bulk(b"matches");
        r.array(matches.len());
        for m in &matches {
            r.array(2 + with_len as usize);
            r.array(2);
            r.int(m.a.0 as i64);
            r.int(m.a.1 as i64);
            r.array(2);
            r.int(m.b.0 as i64);
            r.int(m.b.1 as i64);
            if with_len {
                r.int(m.len as i64);
            }
        }
        r.bulk(b"len");
        r.int(total as i64);
    } else if len {
        r.int(total as i64);
    } else {
        r.bulk(&string);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_matches_redis_example() {
        // The example of Redis's LCS documentation.
        let (len, s, m) = lcs_compute(b"ohmytext", b"mynewtext", 0);
        assert_eq!(len, 6);
        assert_eq!(s, b"mytext");
        assert_eq!(m, vec![LcsMatch { a: (4, 7), b: (5, 8), len: 4 }, LcsMatch { a: (2, 3), b: (0, 1), len: 2 }]);
        let (_, _, m) = lcs_compute(b"ohmytext", b"mynewtext", 4);
        assert_eq!(m.len(), 1);
        let (len, s, m) = lcs_compute(b"", b"abc", 0);
        assert_eq!((len, s.len(), m.len()), (0, 0, 0));
    }

    #[test]
    fn getrange_bounds_as_redis() {
        assert_eq!(getrange_bounds(0, -1, 5), Some((0, 5)));
        assert_eq!(getrange_bounds(-3, -1, 5), Some((2, 5)));
        assert_eq!(getrange_bounds(-1, -3, 5), None);
        assert_eq!(getrange_bounds(3, 1, 5), None);
        assert_eq!(getrange_bounds(0, 100, 5), Some((0, 5)));
        assert_eq!(getrange_bounds(-100, 0, 5), Some((0, 1)));
        assert_eq!(getrange_bounds(0, 0, 0), None);
        assert_eq!(getrange_bounds(i64::MIN, i64::MAX, 3), Some((0, 3)));
    }

    #[test]
    fn set_options() {
        let parse = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
            parse_extended(&args, true).map(|o| o.flags)
        };
        assert_eq!(parse("set k v nx"), Some(opt::NX));
        assert_eq!(parse("set k v nx xx"), None);
        assert_eq!(parse("set k v ex 1 ex 2"), Some(opt::EX));
        assert_eq!(parse("set k v ex 1 px 2"), None);
        assert_eq!(parse("set k v keepttl ex 1"), None);
        assert_eq!(parse("set k v ex"), None);
        assert_eq!(parse("set k v get nx"), Some(opt::GET | opt::NX));
        assert_eq!(parse("set k v persist"), None);
    }
}
