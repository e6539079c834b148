//! List commands (Redis 7.0's t_list.c), the non-blocking ones.
//!
//! Every handler follows Redis's order of checks (option syntax, then
//! argument values, then the key), because the order decides which error a
//! client sees when several things are wrong at once. Options are parsed
//! into a struct before anything is touched.
//!
//! A list that a command empties is deleted, as Redis deletes it. The dirty
//! counter moves as Redis's does (one per pushed, popped or removed
//! element), so the AOF gets a command exactly when Redis would propagate
//! it; LMPOP propagates as the LPOP/RPOP with a count that it amounted to.
//! LMOVE, RPOPLPUSH and LMPOP over keys on several shards run held with
//! every involved shard parked (`Route::Keys`), so they are atomic for
//! other clients.

use super::lookup::{ListKind, WrongType};
use super::string::cstr;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::Value;
use crate::types::listpack::{Entry, Where};
use crate::types::Quicklist;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    const READ_FAST: &[&str] = &["@read", "@list", "@fast"];
    const READ_SLOW: &[&str] = &["@read", "@list", "@slow"];
    const WRITE_FAST: &[&str] = &["@write", "@list", "@fast"];
    const WRITE_SLOW: &[&str] = &["@write", "@list", "@slow"];
    let s = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("list");
    vec![
        s("lindex", 3, READONLY, lindex).acl(READ_SLOW).doc("1.0.0", "Get an element from a list by its index"),
        s("linsert", 5, WRITE | DENYOOM, linsert).acl(WRITE_SLOW).doc("2.2.0", "Insert an element before or after another element in a list"),
        s("llen", 2, READONLY | FAST, llen).acl(READ_FAST).doc("1.0.0", "Get the length of a list"),
        s("lmove", 5, WRITE | DENYOOM, lmove).keys(1, 2, 1).acl(WRITE_SLOW).doc("6.2.0", "Pop an element from a list, push it to another list and return it"),
        s("lmpop", -4, WRITE, lmpop).keys(0, 0, 0).find_keys(lmpop_keys).acl(WRITE_SLOW).doc("7.0.0", "Pop elements from a list"),
        s("lpop", -2, WRITE | FAST, lpop).acl(WRITE_FAST).doc("1.0.0", "Remove and get the first elements in a list"),
        s("lpos", -3, READONLY, lpos).acl(READ_SLOW).doc("6.0.6", "Return the index of matching elements on a list"),
        s("lpush", -3, WRITE | DENYOOM | FAST, lpush).acl(WRITE_FAST).doc("1.0.0", "Prepend one or multiple elements to a list"),
        s("lpushx", -3, WRITE | DENYOOM | FAST, lpushx).acl(WRITE_FAST).doc("2.2.0", "Prepend an element to a list, only if the list exists"),
        s("lrange", 4, READONLY, lrange).acl(READ_SLOW).doc("1.0.0", "Get a range of elements from a list"),
        s("lrem", 4, WRITE, lrem).acl(WRITE_SLOW).doc("1.0.0", "Remove elements from a list"),
        s("lset", 4, WRITE | DENYOOM, lset).acl(WRITE_SLOW).doc("1.0.0", "Set the value of an element in a list by its index"),
        s("ltrim", 4, WRITE, ltrim).acl(WRITE_SLOW).doc("1.0.0", "Trim a list to the specified range"),
        s("rpop", -2, WRITE | FAST, rpop).acl(WRITE_FAST).doc("1.0.0", "Remove and get the last elements in a list"),
        s("rpoplpush", 3, WRITE | DENYOOM, rpoplpush)
            .keys(1, 2, 1)
            .acl(WRITE_SLOW)
            .doc("1.2.0", "Remove the last element in a list, prepend it to another list and return it"),
        s("rpush", -3, WRITE | DENYOOM | FAST, rpush).acl(WRITE_FAST).doc("1.0.0", "Append one or multiple elements to a list"),
        s("rpushx", -3, WRITE | DENYOOM | FAST, rpushx).acl(WRITE_FAST).doc("2.2.0", "Append an element to a list, only if the list exists"),
    ]
}

/// LMPOP's keys: `numkeys` at 1, the keys after it.
fn lmpop_keys(args: &[&[u8]], out: &mut Vec<usize>) {
    super::numkeys_keys(args, 1, out);
}

/// The quicklist of a value a `ListKind` lookup returned.
pub(crate) fn list_mut(v: &mut Value) -> &mut Quicklist {
    match v {
        Value::List(q) => q,
        other => unreachable!("a ListKind lookup returned a {}", other.type_name()),
    }
}

/// The list at `key`, known to exist (looked up by the handler already:
/// no expiry, counting or access time again).
fn list_at<'c>(ctx: &'c mut Ctx, key: &[u8]) -> &'c mut Quicklist {
    let now = ctx.now_ms;
    let e = ctx.db(key).lookup(key, now, false).expect("a list looked up by the command");
    list_mut(&mut e.value)
}

/// A new, empty list with the current encoding settings (a list created
/// after CONFIG SET uses the new values).
fn new_list(ctx: &Ctx) -> Quicklist {
    let enc = &ctx.config().encodings;
    let mut q = Quicklist::new(enc.list_max_listpack_size);
    q.set_compress_depth(enc.list_compress_depth);
    q
}

/// `key` changed by `writes` element operations: made known once and
/// counted as Redis counts it (`server.dirty += n`), so a command that
/// changed nothing is not propagated.
pub(crate) fn wrote(ctx: &mut Ctx, key: &[u8], writes: usize) {
    if writes == 0 {
        return;
    }
    let db = ctx.db;
    ctx.modified(db, key);
    ctx.shards.of(key).dirty += writes as u64 - 1;
}

/// Deletes `key` when the command emptied its list (Redis never keeps an
/// empty list); returns whether it did. The caller notifies `del` after the
/// command's own event (`deleted`).
pub(crate) fn drop_if_empty(ctx: &mut Ctx, key: &[u8]) -> bool {
    let empty = list_at(ctx, key).is_empty();
    if empty {
        ctx.db(key).remove(key);
    }
    empty
}

/// The command's `event` on `key`, then `del` when it emptied the list.
pub(crate) fn notify_then_del(ctx: &mut Ctx, key: &[u8], event: &str, deleted: bool) {
    ctx.notify(notify::LIST, event, key);
    if deleted {
        ctx.notify(notify::GENERIC, "del", key);
    }
}

pub(crate) fn pop_event(head: bool) -> &'static str {
    if head {
        "lpop"
    } else {
        "rpop"
    }
}

fn reply_entry(r: &mut Reply, e: Entry<'_>) {
    match e {
        Entry::Str(s) => r.bulk(s),
        Entry::Int(n) => r.bulk_int(n),
    }
}

/// LEFT / RIGHT (Redis's `getListPositionFromObjectOrReply`): true for the head.
pub(crate) fn parse_side(arg: &[u8]) -> Option<bool> {
    let word = cstr(arg);
    if eq_ic(word, "left") {
        Some(true)
    } else if eq_ic(word, "right") {
        Some(false)
    } else {
        None
    }
}

/// Redis's `getRangeLongFromObjectOrReply`: `msg` (or Redis's generic
/// text) both for a non-integer and for a value outside `min..=max`.
pub(crate) fn parse_ranged(arg: &[u8], min: i64, max: i64, msg: &'static str) -> Result<i64, &'static str> {
    match super::parse_i64(arg) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(msg),
    }
}

pub(crate) const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

fn push_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, head: bool, only_existing: bool) {
    let key = args[1];
    let now = ctx.now_ms;
    let push = |q: &mut Quicklist| {
        for v in &args[2..] {
            if head {
                q.push_head(v);
            } else {
                q.push_tail(v);
            }
        }
        q.len()
    };
    let len = match ctx.lookup_write::<ListKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) if only_existing => return r.int(0),
        Ok(None) => {
            let mut q = new_list(ctx);
            let len = push(&mut q);
            ctx.db(key).set(key, Value::List(Box::new(q)), now, false);
            ctx.notify_new(key);
            len
        }
        Ok(Some(e)) => push(list_mut(&mut e.value)),
    };
    ctx.wrote_key(key, args.len() - 2, notify::LIST, if head { "lpush" } else { "rpush" });
    r.int(len as i64);
}

fn lpush(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    push_generic(ctx, args, r, true, false);
}

fn rpush(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    push_generic(ctx, args, r, false, false);
}

fn lpushx(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    push_generic(ctx, args, r, true, true);
}

fn rpushx(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    push_generic(ctx, args, r, false, true);
}

/// Replies `n` elements of `q` from one end (head to tail from the head,
/// tail to head from the tail) and deletes them; returns how many went.
pub(crate) fn pop_range_reply(q: &mut Quicklist, head: bool, count: usize, r: &mut Reply) -> usize {
    let n = count.min(q.len());
    r.array(n);
    let mut left = n;
    let mut each = |e: Entry<'_>| {
        reply_entry(r, e);
        left -= 1;
        left > 0
    };
    if head {
        q.visit(0, &mut each);
        q.delete_range(0, n);
    } else {
        q.visit_rev(&mut each);
        q.delete_range(-(n as i64), n);
    }
    n
}

/// LPOP / RPOP with an optional count (Redis's `popGenericCommand`).
fn pop_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, head: bool) {
    if args.len() > 3 {
        return r.error(&super::arity_error(if head { "lpop" } else { "rpop" }));
    }
    let count = match args.get(2) {
        Some(arg) => match parse_ranged(arg, 0, i64::MAX, NOT_POSITIVE) {
            Ok(n) => Some(n as usize),
            Err(e) => return r.error(e),
        },
        None => None,
    };
    let key = args[1];
    let q = match ctx.lookup_write::<ListKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) if count.is_some() => return r.null_array(),
        Ok(None) => return r.null(),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let popped = match count {
        Some(0) => return r.array(0),
        Some(n) => pop_range_reply(q, head, n, r),
        None => {
            q.pop_with(head, |e| reply_entry(r, e)).expect("lists are never empty");
            1
        }
    };
    // Read from the list in hand: no second lookup of the key.
    let deleted = q.is_empty();
    if deleted {
        ctx.db(key).remove(key);
    }
    // At least one popped: the list was not empty and the count not 0.
    ctx.wrote_key(key, popped, notify::LIST, pop_event(head));
    if deleted {
        ctx.notify(notify::GENERIC, "del", key);
    }
}

fn lpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    pop_generic(ctx, args, r, true);
}

fn rpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    pop_generic(ctx, args, r, false);
}

fn llen(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<ListKind>(args[1]) {
        Err(WrongType) => r.error(err::WRONGTYPE),
        Ok(None) => r.int(0),
        Ok(Some(e)) => r.int(list_mut(&mut e.value).len() as i64),
    }
}

fn lindex(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    // The key first, then the index, as Redis checks them.
    let q = match ctx.lookup_read::<ListKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.null(),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let Some(index) = super::parse_i64(args[2]) else {
        return r.error(err::NOT_INTEGER);
    };
    let len = q.len() as i64;
    let pos = if index < 0 { len.saturating_add(index) } else { index };
    if !(0..len).contains(&pos) {
        return r.null();
    }
    q.visit(pos as usize, |e| {
        reply_entry(r, e);
        false
    });
}

/// The positions LRANGE replies for `start..=end` over `len` elements
/// (Redis's `addListRangeReply`): the first position and a count.
pub fn range_bounds(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { len.saturating_add(start) } else { start }.max(0);
    let end = if end < 0 { len.saturating_add(end) } else { end };
    if start > end || start >= len {
        return None;
    }
    let end = end.min(len - 1);
    Some((start as usize, (end - start + 1) as usize))
}

fn lrange(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (Some(start), Some(end)) = (super::parse_i64(args[2]), super::parse_i64(args[3])) else {
        return r.error(err::NOT_INTEGER);
    };
    let q = match ctx.lookup_read::<ListKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.array(0),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let Some((from, n)) = range_bounds(start, end, q.len()) else {
        return r.array(0);
    };
    r.array(n);
    let mut left = n;
    q.visit(from, |e| {
        reply_entry(r, e);
        left -= 1;
        left > 0
    });
}

fn linsert(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let word = cstr(args[2]);
    let at = if eq_ic(word, "after") {
        Where::After
    } else if eq_ic(word, "before") {
        Where::Before
    } else {
        return r.error(err::SYNTAX);
    };
    let (key, pivot, v) = (args[1], args[3], args[4]);
    let q = match ctx.lookup_write::<ListKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.int(0),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let Some(pos) = q.position(pivot) else {
        return r.int(-1);
    };
    q.insert(pos, at, v);
    let len = q.len();
    wrote(ctx, key, 1);
    ctx.notify(notify::LIST, "linsert", key);
    r.int(len as i64);
}

fn lset(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let q = match ctx.lookup_write::<ListKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.error(err::NO_SUCH_KEY),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let Some(index) = super::parse_i64(args[2]) else {
        return r.error(err::NOT_INTEGER);
    };
    if !q.set(index, args[3]) {
        return r.error(err::OUT_OF_RANGE);
    }
    wrote(ctx, key, 1);
    ctx.notify(notify::LIST, "lset", key);
    r.ok();
}

fn ltrim(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (Some(start), Some(end)) = (super::parse_i64(args[2]), super::parse_i64(args[3])) else {
        return r.error(err::NOT_INTEGER);
    };
    let key = args[1];
    let q = match ctx.lookup_write::<ListKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.ok(),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let before = q.len();
    q.trim(start, end);
    let removed = before - q.len();
    let deleted = drop_if_empty(ctx, key);
    if removed == 0 {
        // Redis signals the key even when nothing went, but counts no write.
        ctx.also_modified(ctx.db, key);
    }
    wrote(ctx, key, removed);
    // Notified even when nothing went, as Redis does.
    notify_then_del(ctx, key, "ltrim", deleted);
    r.ok();
}

fn lrem(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(count) = super::parse_i64(args[2]) else {
        return r.error(err::NOT_INTEGER);
    };
    let key = args[1];
    let q = match ctx.lookup_write::<ListKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.int(0),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let removed = q.remove(args[3], count);
    let deleted = drop_if_empty(ctx, key);
    wrote(ctx, key, removed);
    if removed > 0 {
        notify_then_del(ctx, key, "lrem", deleted);
    }
    r.int(removed as i64);
}

/// LPOS's options, parsed before the key is looked at.
#[derive(Debug, PartialEq, Eq)]
pub struct LposOptions {
    /// Which match to start from, 1-based; never 0. Negative ranks search
    /// from the tail.
    pub rank: i64,
    /// None without COUNT (a single reply); 0 for every match.
    pub count: Option<i64>,
    /// Elements compared at most; 0 for all.
    pub maxlen: i64,
}

const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";

impl LposOptions {
    /// Redis's option loop of `lposCommand`: a repeated option wins last.
    pub fn parse(args: &[&[u8]]) -> Result<LposOptions, &'static str> {
        let mut o = LposOptions { rank: 1, count: None, maxlen: 0 };
        let mut j = 3;
        while j < args.len() {
            let word = cstr(args[j]);
            let more = j + 1 < args.len();
            if eq_ic(word, "rank") && more {
                j += 1;
                // Redis takes any long here (LONG_MIN included).
                o.rank = super::parse_i64(args[j]).ok_or(err::NOT_INTEGER)?;
                if o.rank == 0 {
                    return Err(RANK_ZERO);
                }
            } else if eq_ic(word, "count") && more {
                j += 1;
                o.count = Some(parse_ranged(args[j], 0, i64::MAX, "ERR COUNT can't be negative")?);
            } else if eq_ic(word, "maxlen") && more {
                j += 1;
                o.maxlen = parse_ranged(args[j], 0, i64::MAX, "ERR MAXLEN can't be negative")?;
            } else {
                return Err(err::SYNTAX);
            }
            j += 1;
        }
        Ok(o)
    }
}

/// LPOS's search, as Redis's loop runs it, fed one element at a time in
/// search order (from the tail for a negative rank). C's wrapping
/// arithmetic is kept: RANK -9223372036854775808 stays negative there, so
/// every match counts and COUNT never ends the search.
pub struct LposSearch<'o> {
    o: &'o LposOptions,
    len: usize,
    rank: i64,
    from_tail: bool,
    limit: usize,
    index: usize,
    matches: i64,
    /// Positions from the head, in the order found.
    pub found: Vec<usize>,
}

impl<'o> LposSearch<'o> {
    pub fn new(len: usize, o: &'o LposOptions) -> LposSearch<'o> {
        let (rank, from_tail) = if o.rank < 0 { (o.rank.wrapping_neg(), true) } else { (o.rank, false) };
        let limit = if o.maxlen == 0 { len } else { (o.maxlen as u64).min(len as u64) as usize };
        LposSearch { o, len, rank, from_tail, limit, index: 0, matches: 0, found: Vec::new() }
    }

    /// The next element matched or not; false once the search is over.
    pub fn step(&mut self, hit: bool) -> bool {
        if self.index >= self.limit {
            return false;
        }
        let index = self.index;
        self.index += 1;
        if hit {
            self.matches += 1;
            if self.matches >= self.rank {
                self.found.push(if self.from_tail { self.len - 1 - index } else { index });
                match self.o.count {
                    None => return false,
                    Some(count) if count != 0 && self.matches.wrapping_sub(self.rank).wrapping_add(1) >= count => return false,
                    Some(_) => {}
                }
            }
        }
        self.index < self.limit
    }
}

fn lpos(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let o = match LposOptions::parse(args) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    let q = match ctx.lookup_read::<ListKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) if o.count.is_some() => return r.array(0),
        Ok(None) => return r.null(),
        Ok(Some(e)) => list_mut(&mut e.value),
    };
    let element = args[2];
    let mut search = LposSearch::new(q.len(), &o);
    let each = |e: Entry<'_>| search.step(e.eq_bytes(element));
    if o.rank < 0 {
        q.visit_rev(each);
    } else {
        q.visit(0, each);
    }
    let found = search.found;
    if o.count.is_some() {
        r.array(found.len());
        for p in found {
            r.int(p as i64);
        }
    } else {
        match found.first() {
            Some(&p) => r.int(p as i64),
            None => r.null(),
        }
    }
}

/// LMOVE / RPOPLPUSH (Redis's `lmoveGenericCommand`): the keys may be
/// one list (a rotation) or lists on two shards, both held.
pub(crate) fn lmove_generic(ctx: &mut Ctx, r: &mut Reply, src: &[u8], dst: &[u8], from_head: bool, to_head: bool) {
    match ctx.lookup_write::<ListKind>(src) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.null(),
        Ok(Some(_)) => {}
    }
    let dst_exists = match ctx.lookup_write::<ListKind>(dst) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(found) => found.is_some(),
    };
    let q = list_at(ctx, src);
    let v = if from_head { q.pop_head() } else { q.pop_tail() }.expect("lists are never empty");
    let src_deleted = src != dst && drop_if_empty(ctx, src);
    // (A rotation pushes onto the list it popped, even an emptied one.)
    lmove_push(ctx, dst, dst_exists || src == dst, to_head, &v);
    let db = ctx.db;
    if src != dst {
        ctx.also_modified(db, src);
    }
    // Redis's order: the destination's push (after `new` when created),
    // then the source's pop and, when emptied, its deletion.
    if src != dst && !dst_exists {
        ctx.notify_new(dst);
    }
    ctx.notify(notify::LIST, if to_head { "lpush" } else { "rpush" }, dst);
    notify_then_del(ctx, src, pop_event(from_head), src_deleted);
    r.bulk(&v);
}

/// LMOVE's source end on the source's own shard (a two-shard hop,
/// `network::rounds_move`): the element `from_head` would pop, and whether
/// popping it would empty the list (looked up by the caller already).
pub(crate) fn lmove_peek(ctx: &mut Ctx, src: &[u8], from_head: bool) -> (Vec<u8>, bool) {
    let q = list_at(ctx, src);
    (q.get_owned(if from_head { 0 } else { -1 }).expect("lists are never empty"), q.len() == 1)
}

/// LMOVE's pop on the source's own shard (a two-shard hop): the element,
/// and whether it emptied (and so deleted) the list. Made known as the
/// second key of the write; notified by the caller, in Redis's order.
pub(crate) fn lmove_pop(ctx: &mut Ctx, src: &[u8], from_head: bool) -> (Vec<u8>, bool) {
    let q = list_at(ctx, src);
    let v = if from_head { q.pop_head() } else { q.pop_tail() }.expect("lists are never empty");
    let deleted = drop_if_empty(ctx, src);
    let db = ctx.db;
    ctx.also_modified(db, src);
    (v, deleted)
}

/// LMOVE's push onto `dst` (on its own shard, for a two-shard hop), the
/// list created when it does not `exist`; counted as the write.
pub(crate) fn lmove_push(ctx: &mut Ctx, dst: &[u8], exists: bool, to_head: bool, v: &[u8]) {
    if !exists {
        let q = new_list(ctx);
        let now = ctx.now_ms;
        ctx.db(dst).set(dst, Value::List(Box::new(q)), now, false);
    }
    let q = list_at(ctx, dst);
    if to_head {
        q.push_head(v);
    } else {
        q.push_tail(v);
    }
    let db = ctx.db;
    ctx.modified(db, dst);
}

/// LMOVE's notifications (`lmove_generic`'s, in Redis's order), all from
/// one shard's thread: `new` when the destination was created, its push,
/// the source's pop and, when emptied, its `del`.
pub(crate) fn lmove_notify(st: &mut crate::shard::ShardState, db: usize, keys: (&[u8], &[u8]), created: bool, sides: (bool, bool), deleted: bool) {
    let ((src, dst), (from_head, to_head)) = (keys, sides);
    if created {
        st.notify_new(db, dst);
    }
    st.notify(db, notify::LIST, if to_head { "lpush" } else { "rpush" }, dst);
    st.notify(db, notify::LIST, pop_event(from_head), src);
    if deleted {
        st.notify(db, notify::GENERIC, "del", src);
    }
}

fn lmove(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (Some(from_head), Some(to_head)) = (parse_side(args[3]), parse_side(args[4])) else {
        return r.error(err::SYNTAX);
    };
    lmove_generic(ctx, r, args[1], args[2], from_head, to_head);
}

fn rpoplpush(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    lmove_generic(ctx, r, args[1], args[2], false, true);
}

/// The arguments of LMPOP, ZMPOP, BLMPOP and BZMPOP from `numkeys` on
/// (`numkeys key [key ...] side [COUNT count]`), parsed before any key is
/// looked at, in Redis's order of errors (`lmpopGenericCommand`,
/// `zmpopGenericCommand`).
#[derive(Debug, PartialEq, Eq)]
pub struct MpopOptions {
    /// The keys, as positions in the arguments.
    pub keys: std::ops::Range<usize>,
    /// The side word as `side` parsed it: LEFT for lists, MAX for zsets.
    pub side: bool,
    pub count: usize,
}

impl MpopOptions {
    /// `numkeys` is `args[numkeys_at]`; `side` parses the side word.
    pub fn parse(args: &[&[u8]], numkeys_at: usize, side: fn(&[u8]) -> Option<bool>) -> Result<MpopOptions, &'static str> {
        let numkeys = parse_ranged(args[numkeys_at], 1, i64::MAX, "ERR numkeys should be greater than 0")? as u64;
        let where_at = (numkeys_at as u64 + 1).saturating_add(numkeys);
        if where_at >= args.len() as u64 {
            return Err(err::SYNTAX);
        }
        let where_at = where_at as usize;
        let side = side(args[where_at]).ok_or(err::SYNTAX)?;
        let mut count = None;
        let mut j = where_at + 1;
        while j < args.len() {
            if count.is_none() && eq_ic(cstr(args[j]), "count") && j + 1 < args.len() {
                j += 1;
                count = Some(parse_ranged(args[j], 1, i64::MAX, "ERR count should be greater than 0")? as usize);
            } else {
                return Err(err::SYNTAX);
            }
            j += 1;
        }
        Ok(MpopOptions { keys: numkeys_at + 1..where_at, side, count: count.unwrap_or(1) })
    }
}

fn lmpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let o = match MpopOptions::parse(args, 1, parse_side) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    for &key in &args[o.keys.clone()] {
        let q = match ctx.lookup_write::<ListKind>(key) {
            Err(WrongType) => return r.error(err::WRONGTYPE),
            Ok(None) => continue,
            Ok(Some(e)) => list_mut(&mut e.value),
        };
        r.array(2);
        r.bulk(key);
        let popped = pop_range_reply(q, o.side, o.count, r);
        let deleted = drop_if_empty(ctx, key);
        wrote(ctx, key, popped);
        notify_then_del(ctx, key, pop_event(o.side), deleted);
        let count = itoa::Buffer::new().format(popped).as_bytes().to_vec();
        ctx.propagate_as(&[if o.side { b"LPOP" } else { b"RPOP" }, key, &count]);
        return;
    }
    r.null_array();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn range_bounds_as_redis() {
        assert_eq!(range_bounds(0, -1, 5), Some((0, 5)));
        assert_eq!(range_bounds(-2, -1, 5), Some((3, 2)));
        assert_eq!(range_bounds(-100, 1, 5), Some((0, 2)));
        assert_eq!(range_bounds(3, 1, 5), None);
        assert_eq!(range_bounds(5, 10, 5), None);
        assert_eq!(range_bounds(0, 100, 5), Some((0, 5)));
        assert_eq!(range_bounds(i64::MIN, i64::MAX, 3), Some((0, 3)));
        assert_eq!(range_bounds(0, -1, 0), None);
    }

    #[test]
    fn lpos_options() {
        let o = LposOptions::parse(&args("lpos k e rank -2 count 0 maxlen 3")).unwrap();
        assert_eq!(o, LposOptions { rank: -2, count: Some(0), maxlen: 3 });
        assert_eq!(LposOptions::parse(&args("lpos k e rank 0")), Err(RANK_ZERO));
        assert_eq!(LposOptions::parse(&args("lpos k e count -1")), Err("ERR COUNT can't be negative"));
        assert_eq!(LposOptions::parse(&args("lpos k e count x")), Err("ERR COUNT can't be negative"));
        assert_eq!(LposOptions::parse(&args("lpos k e rank x")), Err(err::NOT_INTEGER));
        assert_eq!(LposOptions::parse(&args("lpos k e maxlen -1")), Err("ERR MAXLEN can't be negative"));
        assert_eq!(LposOptions::parse(&args("lpos k e rank")), Err(err::SYNTAX));
    }

    #[test]
    fn lpos_find_as_redis() {
        // a a a a: the replies redis-server 7.0.15 gave.
        let all = |o: &LposOptions| {
            let mut search = LposSearch::new(4, o);
            while search.step(true) {}
            search.found
        };
        assert_eq!(all(&LposOptions { rank: 2, count: Some(0), maxlen: 3 }), [1, 2]);
        assert_eq!(all(&LposOptions { rank: -2, count: Some(0), maxlen: 3 }), [2, 1]);
        assert_eq!(all(&LposOptions { rank: -2, count: Some(0), maxlen: 0 }), [2, 1, 0]);
        assert_eq!(all(&LposOptions { rank: i64::MIN, count: Some(2), maxlen: 0 }), [3, 2, 1, 0]);
        assert_eq!(all(&LposOptions { rank: 9, count: None, maxlen: 0 }), [] as [usize; 0]);
        assert_eq!(all(&LposOptions { rank: 1, count: Some(2), maxlen: 0 }), [0, 1]);
    }

    #[test]
    fn lmpop_options() {
        let o = MpopOptions::parse(&args("lmpop 2 a b right count 3"), 1, parse_side).unwrap();
        assert_eq!(o, MpopOptions { keys: 2..4, side: false, count: 3 });
        assert_eq!(MpopOptions::parse(&args("lmpop 0 a left"), 1, parse_side), Err("ERR numkeys should be greater than 0"));
        assert_eq!(MpopOptions::parse(&args("lmpop 2 a left"), 1, parse_side), Err(err::SYNTAX));
        assert_eq!(MpopOptions::parse(&args("lmpop 1 a middle"), 1, parse_side), Err(err::SYNTAX));
        assert_eq!(MpopOptions::parse(&args("lmpop 1 a left count 0"), 1, parse_side), Err("ERR count should be greater than 0"));
        assert_eq!(MpopOptions::parse(&args("lmpop 1 a left count 1 count 1"), 1, parse_side), Err(err::SYNTAX));
        assert_eq!(MpopOptions::parse(&args("lmpop 9223372036854775807 a left"), 1, parse_side), Err(err::SYNTAX));
    }
}
