//! Stream commands (Redis 7.0's t_stream.c): XADD XLEN XRANGE XREVRANGE
//! XDEL XTRIM XSETID, the consumer groups (XGROUP XREADGROUP XACK XPENDING
//! XCLAIM XAUTOCLAIM), XREAD and XINFO.
//!
//! Each handler keeps Redis's order of checks, so that the same error
//! wins when several things are wrong. An emptied stream stays (streams
//! are not deleted when their last entry goes). Writes propagate as Redis
//! propagates them: XADD with the ID it generated and an approximate trim
//! as the exact one it did; XREADGROUP, XCLAIM and XAUTOCLAIM as the
//! XCLAIMs (and XGROUP SETID / CREATECONSUMER) that reproduce their effect.

use super::client::{reply_help, subcommand_syntax_error};
use super::lookup::{StreamKind, WrongType};
use super::string::cstr;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::exec::propagate::Propagate;
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::{Entry, Value};
use crate::types::listpack::Entry as Item;
use crate::types::stream::{AppendError, NodeLimits, StreamId, Trim};
use crate::types::stream_cg::Group;
use crate::types::Stream;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    const W_FAST: &[&str] = &["@write", "@stream", "@fast"];
    const W_SLOW: &[&str] = &["@write", "@stream", "@slow"];
    const R_FAST: &[&str] = &["@read", "@stream", "@fast"];
    const R_SLOW: &[&str] = &["@read", "@stream", "@slow"];
    let c = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("stream");
    let sub = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(2, 2, 1).group("stream");
    vec![
        c("xadd", -5, WRITE | DENYOOM | FAST, xadd).acl(W_FAST).doc("5.0.0", "Appends a new entry to a stream"),
        c("xlen", 2, READONLY | FAST, xlen).acl(R_FAST).doc("5.0.0", "Return the number of entries in a stream"),
        c("xrange", -4, READONLY, xrange).acl(R_SLOW).doc("5.0.0", "Return a range of elements in a stream, with IDs matching the specified IDs interval"),
        c("xrevrange", -4, READONLY, xrevrange)
            .acl(R_SLOW)
            .doc("5.0.0", "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE"),
        c("xdel", -3, WRITE | FAST, xdel).acl(W_FAST).doc("5.0.0", "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist."),
        c("xtrim", -4, WRITE, xtrim).acl(W_SLOW).doc("5.0.0", "Trims the stream to (approximately if '~' is passed) a certain size"),
        c("xsetid", -3, WRITE | DENYOOM | FAST, xsetid).acl(W_FAST).doc("5.0.0", "An internal command for replicating stream values"),
        c("xack", -4, WRITE | FAST, xack).acl(W_FAST).doc("5.0.0", "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL."),
        c("xpending", -3, READONLY, xpending).acl(R_SLOW).doc("5.0.0", "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged."),
        c("xclaim", -6, WRITE | FAST, xclaim).acl(W_FAST).doc("5.0.0", "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer."),
        c("xautoclaim", -6, WRITE | FAST, xautoclaim).acl(W_FAST).doc("6.2.0", "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer."),
        CommandSpec::new("xread", -4, READONLY | BLOCKING, xread)
            .keys(0, 0, 0)
            .find_keys(xread_keys)
            .group("stream")
            .acl(&["@read", "@stream", "@slow", "@blocking"])
            .doc("5.0.0", "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block."),
        CommandSpec::new("xreadgroup", -7, WRITE | BLOCKING, xreadgroup)
            .keys(0, 0, 0)
            .find_keys(xread_keys)
            .group("stream")
            .acl(&["@write", "@stream", "@slow", "@blocking"])
            .doc("5.0.0", "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block."),
        CommandSpec::new("xgroup", -2, 0, xgroup_help).group("stream").acl(&["@slow"]).doc("5.0.0", "A container for consumer groups commands"),
        sub("xgroup|create", -5, WRITE | DENYOOM, xgroup).acl(W_SLOW).doc("5.0.0", "Create a consumer group."),
        sub("xgroup|createconsumer", 5, WRITE | DENYOOM, xgroup).acl(W_SLOW).doc("6.2.0", "Create a consumer in a consumer group."),
        sub("xgroup|delconsumer", 5, WRITE, xgroup).acl(W_SLOW).doc("5.0.0", "Delete a consumer from a consumer group."),
        sub("xgroup|destroy", 4, WRITE, xgroup).acl(W_SLOW).doc("5.0.0", "Destroy a consumer group."),
        sub("xgroup|setid", -5, WRITE, xgroup).acl(W_SLOW).doc("5.0.0", "Set a consumer group to an arbitrary last delivered ID value."),
        CommandSpec::new("xgroup|help", 2, LOADING | STALE, xgroup_help).group("stream").acl(&["@stream", "@slow"]).doc("5.0.0", "Show helpful text about the different subcommands"),
        CommandSpec::new("xinfo", -2, 0, xinfo_help).group("stream").acl(&["@slow"]).doc("5.0.0", "A container for stream introspection commands"),
        sub("xinfo|consumers", 4, READONLY, xinfo).acl(R_SLOW).doc("5.0.0", "List the consumers in a consumer group"),
        sub("xinfo|groups", 3, READONLY, xinfo).acl(R_SLOW).doc("5.0.0", "List the consumer groups of a stream"),
        sub("xinfo|stream", -3, READONLY, xinfo).acl(R_SLOW).doc("5.0.0", "Get information about a stream"),
        CommandSpec::new("xinfo|help", 2, LOADING | STALE, xinfo_help).group("stream").acl(&["@stream", "@slow"]).doc("5.0.0", "Show helpful text about the different subcommands"),
    ]
}

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// XREAD's and XREADGROUP's keys (`xreadGetKeys`): after STREAMS, the
/// first half of what follows.
fn xread_keys(args: &[&[u8]], out: &mut Vec<usize>) {
    let mut i = 1;
    let mut streams = None;
    while i < args.len() {
        let a = args[i];
        if eq_ic(a, "block") || eq_ic(a, "count") {
            i += 2;
        } else if eq_ic(a, "group") {
            i += 3;
        } else if eq_ic(a, "noack") {
            i += 1;
        } else if eq_ic(a, "streams") {
            streams = Some(i);
            break;
        } else {
            break;
        }
    }
    let Some(pos) = streams else { return };
    let num = args.len() - pos - 1;
    if num == 0 || !num.is_multiple_of(2) {
        return;
    }
    out.extend(pos + 1..pos + 1 + num / 2);
}

/// `string2ull`: Redis's strict integer first, then `strtoull`'s
/// leniency (leading spaces, a sign, leading zeros; a minus wraps).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = crate::shard::keyspace::canonical_int(s) {
        return (v >= 0).then_some(v as u64);
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits = i;
    let mut v: u64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(s[i] - b'0'))?;
        i += 1;
    }
    if i == digits || i != s.len() {
        return None;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `streamGenericParseIDOrReply`: `-`, `+`, `ms`, `ms-seq`, and with
/// `seq_star` `ms-*` (then the bool is false: the sequence is to be
/// chosen). `strict` refuses `-` and `+`.
fn parse_id_generic(arg: &[u8], missing_seq: u64, strict: bool, seq_star: bool) -> Result<(StreamId, bool), ()> {
    if arg.len() > 127 {
        return Err(());
    }
    let s = cstr(arg);
    if strict && (s == b"-" || s == b"+") {
        return Err(());
    }
    if s == b"-" {
        return Ok((StreamId::MIN, true));
    }
    if s == b"+" {
        return Ok((StreamId::MAX, true));
    }
    let (ms_part, seq_part) = match memchr::memchr(b'-', s) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let ms = string2ull(ms_part).ok_or(())?;
    match seq_part {
        Some(b"*") if seq_star => Ok((StreamId::new(ms, 0), false)),
        Some(p) => Ok((StreamId::new(ms, string2ull(p).ok_or(())?), true)),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

/// `streamParseStrictIDOrReply` without the `ms-*` form.
fn parse_strict(arg: &[u8]) -> Result<StreamId, ()> {
    parse_id_generic(arg, 0, true, false).map(|(id, _)| id)
}

/// `streamParseIntervalIDOrReply`: an ID, `-`/`+`, or `(ID` exclusive.
fn parse_interval(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), ()> {
    if arg.len() > 1 && arg[0] == b'(' {
        parse_id_generic(&arg[1..], missing_seq, true, false).map(|(id, _)| (id, true))
    } else {
        parse_id_generic(arg, missing_seq, false, false).map(|(id, _)| (id, false))
    }
}

fn stream_mut(e: &mut Entry) -> &mut Stream {
    match &mut e.value {
        Value::Stream(s) => s,
        other => unreachable!("a StreamKind lookup returned a {}", other.type_name()),
    }
}

fn node_limits(ctx: &Ctx) -> NodeLimits {
    let e = &ctx.config().encodings;
    NodeLimits { max_bytes: e.stream_node_max_bytes, max_entries: e.stream_node_max_entries }
}

fn reply_id(r: &mut Reply, id: StreamId) {
    let mut b = Vec::with_capacity(42);
    id.write(&mut b);
    r.bulk(&b);
}

fn reply_entry(r: &mut Reply, id: StreamId, pairs: &[(Item<'_>, Item<'_>)]) {
    r.array(2);
    reply_id(r, id);
    r.array(pairs.len() * 2);
    for (f, v) in pairs {
        r.entry(*f);
        r.entry(*v);
    }
}

/// Replies the entries of `[start, end]` (at most `count`, 0: all) as an
/// array; the number replied.
fn reply_range(r: &mut Reply, s: &Stream, start: StreamId, end: StreamId, count: usize, rev: bool) -> usize {
    let mut body = Vec::new();
    let mut inner = Reply::new(&mut body, r.resp);
    let mut n = 0;
    s.range(start, end, rev, |id, pairs| {
        reply_entry(&mut inner, id, pairs);
        n += 1;
        count == 0 || n < count
    });
    r.array(n);
    r.raw(&body);
    n
}

/// The one entry `id` as `[id, [f, v, ..]]`; false when it does not exist.
fn reply_one(r: &mut Reply, s: &Stream, id: StreamId) -> bool {
    reply_first(r, s, id, id, false)
}

/// The first entry of `[start, end]` (the last when `rev`); false when none.
fn reply_first(r: &mut Reply, s: &Stream, start: StreamId, end: StreamId, rev: bool) -> bool {
    let mut found = false;
    s.range(start, end, rev, |id, pairs| {
        reply_entry(r, id, pairs);
        found = true;
        false
    });
    found
}

/// Trimming arguments of XADD and XTRIM (`streamAddTrimArgs`).
#[derive(Default)]
struct TrimArgs {
    strategy: Option<Trim>,
    approx: bool,
    limit: i64,
    /// Index of the MAXLEN/MINID value, and of the `~`/`=` before it if any.
    arg_idx: usize,
    id: Option<(StreamId, bool)>,
    id_idx: usize,
    nomkstream: bool,
}

/// `streamParseAddOrTrimArgsOrReply`: Ok with the parsed arguments (and
/// for XADD the ID's position), Err with the error text.
fn parse_add_trim(ctx: &Ctx, args: &[&[u8]], xadd: bool) -> Result<TrimArgs, String> {
    let mut t = TrimArgs::default();
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args[i];
        if xadd && opt == b"*" {
            break;
        } else if (eq_ic(opt, "maxlen") || eq_ic(opt, "minid")) && more > 0 {
            if t.strategy.is_some() {
                return Err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible".into());
            }
            t.approx = false;
            let next = args[i + 1];
            if more >= 2 && next == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if eq_ic(opt, "maxlen") {
                let n = super::parse_i64(args[i + 1]).ok_or(err::NOT_INTEGER)?;
                if n < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                t.strategy = Some(Trim::MaxLen(n as u64));
            } else {
                let id = parse_strict(args[i + 1]).map_err(|_| INVALID_ID)?;
                t.strategy = Some(Trim::MinId(id));
            }
            i += 1;
            t.arg_idx = i;
        } else if eq_ic(opt, "limit") && more > 0 {
            let n = super::parse_i64(args[i + 1]).ok_or(err::NOT_INTEGER)?;
            if n < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            t.limit = n;
            limit_given = true;
            i += 1;
        } else if xadd && eq_ic(opt, "nomkstream") {
            t.nomkstream = true;
        } else if xadd {
            let (id, seq_given) = parse_id_generic(opt, 0, true, true).map_err(|_| INVALID_ID)?;
            t.id = Some((id, seq_given));
            break;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    t.id_idx = i;
    if t.limit != 0 && t.strategy.is_none() {
        return Err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into());
    }
    if !xadd && t.strategy.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    if limit_given {
        if !t.approx {
            return Err("ERR syntax error, LIMIT cannot be used without the special ~ option".into());
        }
    } else if t.approx {
        let per_node = ctx.config().encodings.stream_node_max_entries;
        t.limit = per_node.saturating_mul(100);
        if t.limit <= 0 || t.limit > 1_000_000 {
            t.limit = 10_000;
        }
    } else {
        t.limit = 0;
    }
    Ok(t)
}

/// The arguments of a trim that was approximate, as the exact trim it did
/// (`streamRewriteApproxSpecifier` + `streamRewriteTrimArgument`): `~`
/// becomes `=`, the value the length or first ID it left, LIMIT dropped.
fn exact_trim_args(args: &[&[u8]], t: &TrimArgs, s: &Stream) -> Vec<Vec<u8>> {
    let value = match t.strategy {
        Some(Trim::MaxLen(_)) => itoa::Buffer::new().format(s.length).as_bytes().to_vec(),
        // The first entry, tombstones included (the max ID when none):
        // replayed, it trims exactly what this trim did.
        _ => s.first_raw_id().to_bytes(),
    };
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if i == t.arg_idx - 1 {
            out.push(b"=".to_vec());
        } else if i == t.arg_idx {
            out.push(value.clone());
        } else if i >= 2 && i < t.id_idx.min(args.len()) && eq_ic(args[i], "limit") && i + 1 < args.len() {
            i += 2;
            continue;
        } else {
            out.push(args[i].to_vec());
        }
        i += 1;
    }
    out
}

fn xadd(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let t = match parse_add_trim(ctx, args, true) {
        Ok(t) => t,
        Err(e) => return r.error(&e),
    };
    let field_pos = t.id_idx + 1;
    if args.len() < field_pos + 2 || !(args.len() - field_pos).is_multiple_of(2) {
        return r.error(&super::arity_error("xadd"));
    }
    if let Some((id, true)) = t.id {
        if id == StreamId::MIN {
            return r.error("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let key = args[1];
    let now = ctx.now_ms;
    match ctx.lookup_write::<StreamKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(Some(_)) => {}
        Ok(None) => {
            if t.nomkstream {
                return r.null();
            }
            let entry = Entry { value: Value::Stream(Box::default()), expire_at_ms: -1, access_ms: now };
            ctx.db(key).insert_entry(key.into(), entry);
            ctx.notify_new(key);
        }
    }
    let limits = node_limits(ctx);
    let propagating = ctx.propagating();
    let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("the stream exists"));
    if s.last_id == StreamId::MAX {
        return r.error("ERR The stream has exhausted the last possible ID, unable to add more items");
    }
    let id = match s.append(&args[field_pos..], t.id, now.max(0) as u64, limits) {
        Ok(id) => id,
        Err(AppendError::IdTooSmall) => return r.error("ERR The ID specified in XADD is equal or smaller than the target stream top item"),
        Err(AppendError::TooLarge) => return r.error("ERR Elements are too large to be stored"),
    };
    reply_id(r, id);
    let trimmed = t.strategy.map(|st| s.trim(st, t.approx, t.limit)).unwrap_or(0);
    let rewrite = propagating.then(|| {
        let mut argv: Vec<Vec<u8>> = if t.approx { exact_trim_args(args, &t, s) } else { args.iter().map(|a| a.to_vec()).collect() };
        if !matches!(t.id, Some((_, true))) {
            // The ID's position moves left by the dropped LIMIT clause.
            let dropped = args.len() - argv.len();
            argv[t.id_idx - dropped] = id.to_bytes();
        }
        argv
    });
    ctx.modified(ctx.db, key);
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    if let Some(argv) = rewrite {
        ctx.propagate = Propagate::As(argv);
    }
}

fn xlen(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<StreamKind>(args[1]) {
        Ok(Some(e)) => r.int(stream_mut(e).length as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

fn xrange_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, rev: bool) {
    let (start_arg, end_arg) = if rev { (args[3], args[2]) } else { (args[2], args[3]) };
    let Ok((mut start, start_ex)) = parse_interval(start_arg, 0) else { return r.error(INVALID_ID) };
    if start_ex {
        match start.incr() {
            Some(s) => start = s,
            None => return r.error("ERR invalid start ID for the interval"),
        }
    }
    let Ok((mut end, end_ex)) = parse_interval(end_arg, u64::MAX) else { return r.error(INVALID_ID) };
    if end_ex {
        match end.decr() {
            Some(e) => end = e,
            None => return r.error("ERR invalid end ID for the interval"),
        }
    }
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if eq_ic(args[j], "count") && j + 1 < args.len() {
            let Some(n) = super::parse_i64(args[j + 1]) else { return r.error(err::NOT_INTEGER) };
            count = n.max(0);
            j += 2;
        } else {
            return r.error(err::SYNTAX);
        }
    }
    let s = match ctx.lookup_read::<StreamKind>(args[1]) {
        Ok(Some(e)) => stream_mut(e),
        Ok(None) => return r.array(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    if count == 0 {
        return r.null_array();
    }
    reply_range(r, s, start, end, count.max(0) as usize, rev);
}

fn xrange(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    xrange_generic(ctx, args, r, false);
}

fn xrevrange(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    xrange_generic(ctx, args, r, true);
}

fn xdel(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let s = match ctx.lookup_write::<StreamKind>(key) {
        Ok(Some(e)) => stream_mut(e),
        Ok(None) => return r.int(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let mut ids = Vec::with_capacity(args.len() - 2);
    for a in &args[2..] {
        match parse_strict(a) {
            Ok(id) => ids.push(id),
            Err(()) => return r.error(INVALID_ID),
        }
    }
    let mut deleted = 0u64;
    let mut first = false;
    for id in ids {
        if s.delete(id) {
            if id == s.first_id {
                first = true;
            }
            if id > s.max_deleted_entry_id {
                s.max_deleted_entry_id = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.length == 0 {
            s.first_id = StreamId::MIN;
        } else if first {
            s.first_id = s.edge_id(true).unwrap_or(StreamId::MAX);
        }
        ctx.modified(ctx.db, key);
        ctx.notify(notify::STREAM, "xdel", key);
        ctx.shards.of(key).dirty += deleted - 1;
    }
    r.int(deleted as i64);
}

fn xtrim(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let t = match parse_add_trim(ctx, args, false) {
        Ok(t) => t,
        Err(e) => return r.error(&e),
    };
    let key = args[1];
    let propagating = ctx.propagating();
    let s = match ctx.lookup_write::<StreamKind>(key) {
        Ok(Some(e)) => stream_mut(e),
        Ok(None) => return r.int(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let deleted = s.trim(t.strategy.expect("XTRIM has a strategy"), t.approx, t.limit);
    if deleted > 0 {
        let rewrite = (t.approx && propagating).then(|| exact_trim_args(args, &t, s));
        ctx.notify(notify::STREAM, "xtrim", key);
        ctx.modified(ctx.db, key);
        ctx.shards.of(key).dirty += deleted as u64 - 1;
        if let Some(argv) = rewrite {
            ctx.propagate = Propagate::As(argv);
        }
    }
    r.int(deleted);
}

fn xsetid(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Ok(id) = parse_strict(args[2]) else { return r.error(INVALID_ID) };
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if eq_ic(args[i], "entriesadded") && more > 0 {
            let Some(n) = super::parse_i64(args[i + 1]) else { return r.error(err::NOT_INTEGER) };
            if n < 0 {
                return r.error("ERR entries_added must be positive");
            }
            entries_added = n;
        } else if eq_ic(args[i], "maxdeletedid") && more > 0 {
            let Ok(m) = parse_strict(args[i + 1]) else { return r.error(INVALID_ID) };
            if id < m {
                return r.error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
            }
            max_xdel = m;
        } else {
            return r.error(err::SYNTAX);
        }
        i += 2;
    }
    let key = args[1];
    let s = match ctx.lookup_write::<StreamKind>(key) {
        Ok(Some(e)) => stream_mut(e),
        Ok(None) => return r.error(err::NO_SUCH_KEY),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    if s.length > 0 {
        let top = s.edge_id(false).unwrap_or(StreamId::MIN);
        if id < top {
            return r.error("ERR The ID specified in XSETID is smaller than the target stream top item");
        }
        if entries_added != -1 && s.length > entries_added as u64 {
            return r.error("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if max_xdel != StreamId::MIN {
        s.max_deleted_entry_id = max_xdel;
    }
    r.ok();
    // A write (dirty) and an event, but not a modification: Redis 7.0's
    // XSETID calls no `signalModifiedKey`, so WATCH, tracking and blocked
    // readers do not hear of it (a WATCHed key stays untouched).
    ctx.shards.of(key).dirty += 1;
    ctx.notify(notify::STREAM, "xsetid", key);
}

// ---------------------------------------------------------------------
// Consumer groups
// ---------------------------------------------------------------------

fn nogroup(r: &mut Reply, key: &[u8], group: &[u8], tail: &[u8]) {
    r.error_parts(&[b"NOGROUP No such key '", cstr(key), b"' or consumer group '", cstr(group), b"'", tail]);
}

/// What a command that changes groups propagates, gathered as it goes.
pub(crate) struct Props {
    on: bool,
    cmds: Vec<Vec<Vec<u8>>>,
}

impl Props {
    pub(crate) fn new(ctx: &Ctx) -> Props {
        Props { on: ctx.propagating(), cmds: Vec::new() }
    }

    /// `streamPropagateXCLAIM` of pending entry `id`, whose consumer,
    /// delivery time and count are `nack`.
    fn xclaim(&mut self, key: &[u8], group_name: &[u8], g: &Group, id: StreamId, nack: (&[u8], i64, u64)) {
        let (consumer, time, count) = nack;
        if !self.on {
            return;
        }
        let mut b = itoa::Buffer::new();
        self.cmds.push(vec![
            b"XCLAIM".to_vec(),
            key.to_vec(),
            group_name.to_vec(),
            consumer.to_vec(),
            b"0".to_vec(),
            id.to_bytes(),
            b"TIME".to_vec(),
            b.format(time).as_bytes().to_vec(),
            b"RETRYCOUNT".to_vec(),
            itoa::Buffer::new().format(count).as_bytes().to_vec(),
            b"FORCE".to_vec(),
            b"JUSTID".to_vec(),
            b"LASTID".to_vec(),
            g.last_id.to_bytes(),
        ]);
    }

    /// `streamPropagateConsumerCreation`.
    fn createconsumer(&mut self, key: &[u8], group_name: &[u8], consumer: &[u8]) {
        if self.on {
            self.cmds.push(vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), group_name.to_vec(), consumer.to_vec()]);
        }
    }

    /// `streamPropagateGroupID`.
    fn setid(&mut self, key: &[u8], group_name: &[u8], g: &Group) {
        if self.on {
            let read = itoa::Buffer::new().format(g.entries_read).as_bytes().to_vec();
            self.cmds.push(vec![b"XGROUP".to_vec(), b"SETID".to_vec(), key.to_vec(), group_name.to_vec(), g.last_id.to_bytes(), b"ENTRIESREAD".to_vec(), read]);
        }
    }

    pub(crate) fn finish(self, ctx: &mut Ctx) {
        if self.on {
            ctx.propagate = Propagate::Many(self.cmds);
        }
    }
}

/// A container's HELP, or the unknown subcommand error for anything else.
fn help_or_syntax_error(r: &mut Reply, args: &[&[u8]], lines: &[&str]) {
    if args.len() != 2 || !eq_ic(args[1], "help") {
        return subcommand_syntax_error(r, args);
    }
    reply_help(r, lines);
}

fn xgroup_help(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    help_or_syntax_error(
        r,
        args,
        &[
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
            "HELP",
            "    Prints this help.",
        ],
    );
}

fn parse_entries_read(arg: &[u8]) -> Result<i64, &'static str> {
    let n = super::parse_i64(arg).ok_or(err::NOT_INTEGER)?;
    if n < 0 && n != -1 {
        return Err("ERR value for ENTRIESREAD must be positive or -1");
    }
    Ok(n)
}

fn xgroup(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let opt = args[1];
    let key = args[2];
    let grp = args[3];
    let mut mkstream = false;
    let mut entries_read: i64 = -1;
    if eq_ic(opt, "create") && args.len() >= 5 {
        let mut i = 5;
        while i < args.len() {
            if eq_ic(args[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if eq_ic(args[i], "entriesread") && i + 1 < args.len() {
                match parse_entries_read(args[i + 1]) {
                    Ok(n) => entries_read = n,
                    Err(e) => return r.error(e),
                }
                i += 2;
            } else {
                return subcommand_syntax_error(r, args);
            }
        }
    }
    if eq_ic(opt, "setid") {
        // 7.0 checks SETID's arguments before the key (a wrong type, a missing key)
        if args.len() == 7 && eq_ic(args[5], "entriesread") {
            match parse_entries_read(args[6]) {
                Ok(n) => entries_read = n,
                Err(e) => return r.error(e),
            }
        } else if args.len() != 5 {
            return subcommand_syntax_error(r, args);
        }
    }
    let now = ctx.now_ms;
    let exists = match ctx.lookup_write::<StreamKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(e) => e.is_some(),
    };
    if !mkstream {
        if !exists {
            return r.error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        }
        let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
        if !s.groups.contains_key(grp) && (eq_ic(opt, "setid") || eq_ic(opt, "createconsumer") || eq_ic(opt, "delconsumer")) {
            return r.error_parts(&[b"NOGROUP No such consumer group '", cstr(grp), b"' for key name '", cstr(key), b"'"]);
        }
    }
    if eq_ic(opt, "create") && (5..=8).contains(&args.len()) {
        let id = if args[4] == b"$" {
            if exists {
                stream_mut(ctx.db(key).lookup(key, now, false).expect("exists")).last_id
            } else {
                StreamId::MIN
            }
        } else {
            match parse_strict(args[4]) {
                Ok(id) => id,
                Err(()) => return r.error(INVALID_ID),
            }
        };
        if !exists {
            let entry = Entry { value: Value::Stream(Box::default()), expire_at_ms: -1, access_ms: now };
            ctx.db(key).insert_entry(key.into(), entry);
            ctx.notify_new(key);
            ctx.modified(ctx.db, key);
            ctx.shards.of(key).dirty -= 1;
        }
        let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
        if s.groups.contains_key(grp) {
            return r.error("BUSYGROUP Consumer Group name already exists");
        }
        s.groups.insert(grp.to_vec(), Group::new(id, entries_read));
        r.ok();
        ctx.shards.of(key).dirty += 1;
        ctx.notify(notify::STREAM, "xgroup-create", key);
    } else if eq_ic(opt, "setid") && (args.len() == 5 || args.len() == 7) {
        let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
        let id = if args[4] == b"$" {
            s.last_id
        } else {
            match parse_id_generic(args[4], 0, false, false) {
                Ok((id, _)) => id,
                Err(()) => return r.error(INVALID_ID),
            }
        };
        let g = s.groups.get_mut(grp).expect("checked");
        g.last_id = id;
        g.entries_read = entries_read;
        r.ok();
        ctx.shards.of(key).dirty += 1;
        ctx.notify(notify::STREAM, "xgroup-setid", key);
    } else if eq_ic(opt, "destroy") && args.len() == 4 {
        let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
        if s.groups.remove(grp).is_some() {
            r.int(1);
            ctx.shards.of(key).dirty += 1;
            ctx.notify(notify::STREAM, "xgroup-destroy", key);
            let db = ctx.db;
            ctx.shards.of(key).blocking.signal(db, key);
        } else {
            r.int(0);
        }
    } else if eq_ic(opt, "createconsumer") && args.len() == 5 {
        let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
        let g = s.groups.get_mut(grp).expect("checked");
        let (_, created) = g.consumer_or_create(args[4], now);
        r.int(created as i64);
        if created {
            ctx.shards.of(key).dirty += 1;
            ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        }
    } else if eq_ic(opt, "delconsumer") && args.len() == 5 {
        let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
        let g = s.groups.get_mut(grp).expect("checked");
        let pending = g.delete_consumer(args[4]);
        r.int(pending.unwrap_or(0) as i64);
        if pending.is_some() {
            ctx.shards.of(key).dirty += 1;
            ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
        }
    } else {
        subcommand_syntax_error(r, args);
    }
}

fn xack(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let s = match ctx.lookup_read::<StreamKind>(key) {
        Ok(Some(e)) => stream_mut(e),
        Ok(None) => return r.int(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let Some(g) = s.groups.get_mut(args[2]) else { return r.int(0) };
    let mut ids = Vec::with_capacity(args.len() - 3);
    for a in &args[3..] {
        match parse_strict(a) {
            Ok(id) => ids.push(id),
            Err(()) => return r.error(INVALID_ID),
        }
    }
    let acked = ids.into_iter().filter(|id| g.ack(*id)).count();
    ctx.shards.of(key).dirty += acked as u64;
    r.int(acked as i64);
}

fn xpending(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let justinfo = args.len() == 3;
    if args.len() != 3 && !(6..=9).contains(&args.len()) {
        return r.error(err::SYNTAX);
    }
    let (mut start, mut end, mut count, mut minidle) = (StreamId::MIN, StreamId::MAX, 0i64, 0i64);
    let mut consumer: Option<&[u8]> = None;
    if args.len() >= 6 {
        let mut idx = 3;
        if eq_ic(args[3], "idle") {
            let Some(n) = super::parse_i64(args[4]) else { return r.error(err::NOT_INTEGER) };
            minidle = n;
            if args.len() < 8 {
                return r.error(err::SYNTAX);
            }
            idx += 2;
        }
        let Some(n) = args.get(idx + 2).and_then(|a| super::parse_i64(a)) else {
            return r.error(if args.len() > idx + 2 { err::NOT_INTEGER } else { err::SYNTAX });
        };
        count = n.max(0);
        let Ok((s, ex)) = parse_interval(args[idx], 0) else { return r.error(INVALID_ID) };
        start = s;
        if ex {
            match start.incr() {
                Some(s) => start = s,
                None => return r.error("ERR invalid start ID for the interval"),
            }
        }
        let Ok((e, ex)) = parse_interval(args[idx + 1], u64::MAX) else { return r.error(INVALID_ID) };
        end = e;
        if ex {
            match end.decr() {
                Some(e) => end = e,
                None => return r.error("ERR invalid end ID for the interval"),
            }
        }
        if idx + 3 < args.len() {
            consumer = Some(args[idx + 3]);
        }
    }
    let now = ctx.now_ms;
    let g = match ctx.lookup_read::<StreamKind>(args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(e) => e.and_then(|e| stream_mut(e).groups.get(args[2])),
    };
    let Some(g) = g else { return nogroup(r, args[1], args[2], b"") };
    if justinfo {
        r.array(4);
        r.int(g.pel.len() as i64);
        match (g.pel.keys().next(), g.pel.keys().next_back()) {
            (Some(first), Some(last)) => {
                reply_id(r, *first);
                reply_id(r, *last);
                let with: Vec<_> = g.consumers.iter().filter(|(_, c)| !c.pel.is_empty()).collect();
                r.array(with.len());
                for (name, c) in with {
                    r.array(2);
                    r.bulk(name);
                    r.bulk_int(c.pel.len() as i64);
                }
            }
            _ => {
                r.null();
                r.null();
                r.null_array();
            }
        }
        return;
    }
    let ids: Vec<StreamId> = match consumer {
        Some(name) => match g.consumers.get(name) {
            Some(c) => c.pel.range(start..).copied().collect(),
            None => return r.array(0),
        },
        None => g.pel.range(start..).map(|(id, _)| *id).collect(),
    };
    let mut body = Vec::new();
    let mut inner = Reply::new(&mut body, r.resp);
    let mut n = 0;
    for id in ids {
        if count == 0 || id > end {
            break;
        }
        let nack = &g.pel[&id];
        if minidle != 0 && now - nack.delivery_time < minidle {
            continue;
        }
        n += 1;
        count -= 1;
        inner.array(4);
        reply_id(&mut inner, id);
        inner.bulk(&nack.consumer);
        inner.int((now - nack.delivery_time).max(0));
        inner.int(nack.delivery_count as i64);
    }
    r.array(n);
    r.raw(&body);
}

/// The claiming of XCLAIM and XAUTOCLAIM: consumer `name` created on the
/// first claim, each change propagated as an XCLAIM and counted dirty.
struct Claimer<'a> {
    key: &'a [u8],
    gname: &'a [u8],
    name: &'a [u8],
    now: i64,
    dirty: u64,
    created: bool,
    ready: bool,
}

impl Claimer<'_> {
    /// Drops pending `id`, whose entry is gone from the stream.
    fn drop_gone(&mut self, g: &mut Group, id: StreamId, props: &mut Props) {
        let nack = &g.pel[&id];
        let (c, t, n) = (nack.consumer.clone(), nack.delivery_time, nack.delivery_count);
        props.xclaim(self.key, self.gname, g, id, (&c, t, n));
        self.dirty += 1;
        g.ack(id);
    }

    /// Gives pending `id` to the consumer, delivered at `time`, its count
    /// changed by `count`.
    fn take(&mut self, g: &mut Group, id: StreamId, time: i64, props: &mut Props, count: impl FnOnce(&mut u64)) {
        if !self.ready {
            let (c, new) = g.consumer_or_create(self.name, self.now);
            c.seen_time = self.now;
            self.created = new;
            self.ready = true;
            self.dirty += new as u64;
        }
        g.assign(id, self.name);
        let nack = g.pel.get_mut(&id).expect("pending");
        nack.delivery_time = time;
        count(&mut nack.delivery_count);
        let n = nack.delivery_count;
        props.xclaim(self.key, self.gname, g, id, (self.name, time, n));
        self.dirty += 1;
    }

    fn finish(self, ctx: &mut Ctx, props: Props) {
        ctx.shards.of(self.key).dirty += self.dirty;
        if self.created {
            ctx.notify(notify::STREAM, "xgroup-createconsumer", self.key);
        }
        props.finish(ctx);
    }
}

/// `getLongLongFromObjectOrReply` with Redis's custom message.
fn ll_or(arg: &[u8], msg: &str) -> Result<i64, String> {
    super::parse_i64(arg).ok_or_else(|| format!("ERR {}", msg))
}

fn xclaim(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let gname = args[2];
    let now = ctx.now_ms;
    let has = match ctx.lookup_read::<StreamKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(e) => e.is_some_and(|e| stream_mut(e).groups.contains_key(gname)),
    };
    if !has {
        return nogroup(r, key, gname, b"");
    }
    let minidle = match ll_or(args[4], "Invalid min-idle-time argument for XCLAIM") {
        Ok(n) => n.max(0),
        Err(e) => return r.error(&e),
    };
    let mut j = 5;
    while j < args.len() && parse_strict(args[j]).is_ok() {
        j += 1;
    }
    let last_id_arg = j;
    let (mut force, mut justid, mut retrycount, mut deliverytime, mut last_id) = (false, false, -1i64, -1i64, StreamId::MIN);
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = args[j];
        if eq_ic(opt, "force") {
            force = true;
        } else if eq_ic(opt, "justid") {
            justid = true;
        } else if eq_ic(opt, "idle") && more > 0 {
            j += 1;
            match ll_or(args[j], "Invalid IDLE option argument for XCLAIM") {
                Ok(n) => deliverytime = now - n,
                Err(e) => return r.error(&e),
            }
        } else if eq_ic(opt, "time") && more > 0 {
            j += 1;
            match ll_or(args[j], "Invalid TIME option argument for XCLAIM") {
                Ok(n) => deliverytime = n,
                Err(e) => return r.error(&e),
            }
        } else if eq_ic(opt, "retrycount") && more > 0 {
            j += 1;
            match ll_or(args[j], "Invalid RETRYCOUNT option argument for XCLAIM") {
                Ok(n) => retrycount = n,
                Err(e) => return r.error(&e),
            }
        } else if eq_ic(opt, "lastid") && more > 0 {
            j += 1;
            match parse_strict(args[j]) {
                Ok(id) => last_id = id,
                Err(()) => return r.error(INVALID_ID),
            }
        } else {
            return r.error_parts(&[b"ERR Unrecognized XCLAIM option '", cstr(opt), b"'"]);
        }
        j += 1;
    }
    if deliverytime != -1 {
        if deliverytime < 0 || deliverytime > now {
            deliverytime = now;
        }
    } else {
        deliverytime = now;
    }
    let mut props = Props::new(ctx);
    let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
    let exists: Vec<bool> = args[5..last_id_arg].iter().map(|a| s.contains(parse_strict(a).expect("parsed"))).collect();
    let g = s.groups.get_mut(gname).expect("checked");
    let mut propagate_last_id = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last_id = true;
    }
    let mut c = Claimer { key, gname, name: args[3], now, dirty: 0, created: false, ready: false };
    let mut claimed: Vec<StreamId> = Vec::new();
    for (k, a) in args[5..last_id_arg].iter().enumerate() {
        let id = parse_strict(a).expect("parsed");
        if !exists[k] {
            if g.pel.contains_key(&id) {
                c.drop_gone(g, id, &mut props);
                propagate_last_id = false;
            }
            continue;
        }
        if force && !g.pel.contains_key(&id) {
            g.pel.insert(id, crate::types::stream_cg::Nack { delivery_time: now, delivery_count: 0, consumer: Vec::new() });
        }
        let Some(nack) = g.pel.get(&id) else { continue };
        if !nack.consumer.is_empty() && minidle != 0 && now - nack.delivery_time < minidle {
            continue;
        }
        c.take(g, id, deliverytime, &mut props, |count| {
            if retrycount >= 0 {
                *count = retrycount as u64;
            } else if !justid {
                *count += 1;
            }
        });
        claimed.push(id);
        propagate_last_id = false;
    }
    if propagate_last_id {
        props.setid(key, gname, g);
        c.dirty += 1;
    }
    r.array(claimed.len());
    for id in claimed {
        if justid {
            reply_id(r, id);
        } else if !reply_one(r, s, id) {
            r.null();
        }
    }
    c.finish(ctx, props);
}

fn xautoclaim(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let gname = args[2];
    let now = ctx.now_ms;
    let minidle = match ll_or(args[4], "Invalid min-idle-time argument for XAUTOCLAIM") {
        Ok(n) => n.max(0),
        Err(e) => return r.error(&e),
    };
    let Ok((mut start, ex)) = parse_interval(args[5], 0) else { return r.error(INVALID_ID) };
    if ex {
        match start.incr() {
            Some(s) => start = s,
            None => return r.error("ERR invalid start ID for the interval"),
        }
    }
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ic(args[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            match super::parse_i64(args[j + 1]) {
                Some(n) if (1..=max).contains(&n) => count = n,
                Some(_) => return r.error("ERR COUNT must be > 0"),
                None => return r.error(err::NOT_INTEGER),
            }
            j += 1;
        } else if eq_ic(args[j], "justid") {
            justid = true;
        } else {
            return r.error(err::SYNTAX);
        }
        j += 1;
    }
    let has = match ctx.lookup_read::<StreamKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(e) => e.is_some_and(|e| stream_mut(e).groups.contains_key(gname)),
    };
    if !has {
        return nogroup(r, key, gname, b"");
    }
    let mut props = Props::new(ctx);
    let s = stream_mut(ctx.db(key).lookup(key, now, false).expect("exists"));
    let pending: Vec<StreamId> = s.groups[gname].pel.range(start..).map(|(id, _)| *id).collect();
    let exists: Vec<bool> = pending.iter().map(|id| s.contains(*id)).collect();
    let g = s.groups.get_mut(gname).expect("checked");
    let mut c = Claimer { key, gname, name: args[3], now, dirty: 0, created: false, ready: false };
    let mut attempts = count * 10;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut k = 0;
    while attempts > 0 && count > 0 && k < pending.len() {
        attempts -= 1;
        let id = pending[k];
        k += 1;
        if !exists[k - 1] {
            c.drop_gone(g, id, &mut props);
            deleted.push(id);
            count -= 1;
            continue;
        }
        if minidle != 0 && now - g.pel[&id].delivery_time < minidle {
            continue;
        }
        c.take(g, id, now, &mut props, |n| {
            if !justid {
                *n += 1;
            }
        });
        claimed.push(id);
        count -= 1;
    }
    let cursor = pending.get(k).copied().unwrap_or(StreamId::MIN);
    r.array(3);
    reply_id(r, cursor);
    r.array(claimed.len());
    for id in claimed {
        if justid {
            reply_id(r, id);
        } else {
            reply_one(r, s, id);
        }
    }
    r.array(deleted.len());
    for id in deleted {
        reply_id(r, id);
    }
    c.finish(ctx, props);
}

// ---------------------------------------------------------------------
// XREAD / XREADGROUP
// ---------------------------------------------------------------------

/// Parsed XREAD / XREADGROUP arguments.
pub struct ReadArgs<'a> {
    pub timeout_ms: i64,
    pub count: usize,
    pub streams_at: usize,
    pub streams: usize,
    pub noack: bool,
    pub group: Option<(&'a [u8], &'a [u8])>,
}

fn parse_read_args<'a>(args: &[&'a [u8]], xreadgroup: bool, from_script: bool) -> Result<ReadArgs<'a>, String> {
    let mut a = ReadArgs { timeout_ms: -1, count: 0, streams_at: 0, streams: 0, noack: false, group: None };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let o = args[i];
        if eq_ic(o, "block") && more > 0 {
            if from_script {
                // Redis keeps this error for Lua (blocking is denied there anyway).
                return Err(format!("ERR {} command is not allowed with BLOCK option from scripts", if xreadgroup { "xreadgroup" } else { "xread" }));
            }
            i += 1;
            let Some(t) = super::parse_i64(args[i]) else { return Err("ERR timeout is not an integer or out of range".into()) };
            if t < 0 {
                return Err("ERR timeout is negative".into());
            }
            a.timeout_ms = t;
        } else if eq_ic(o, "count") && more > 0 {
            i += 1;
            let n = super::parse_i64(args[i]).ok_or(err::NOT_INTEGER)?;
            a.count = n.max(0) as usize;
        } else if eq_ic(o, "streams") && more > 0 {
            a.streams_at = i + 1;
            let n = args.len() - a.streams_at;
            if !n.is_multiple_of(2) {
                // 7.0 names XREAD and '$' for XREADGROUP too (t_stream.c xreadCommand)
                return Err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.".into());
            }
            a.streams = n / 2;
            break;
        } else if eq_ic(o, "group") && more >= 2 {
            if !xreadgroup {
                return Err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            a.group = Some((args[i + 1], args[i + 2]));
            i += 2;
        } else if eq_ic(o, "noack") {
            if !xreadgroup {
                return Err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            a.noack = true;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if a.streams_at == 0 {
        return Err(err::SYNTAX.into());
    }
    if xreadgroup && a.group.is_none() {
        return Err("ERR Missing GROUP option for XREADGROUP".into());
    }
    Ok(a)
}

/// `>`: new entries for the group.
const NEW_ENTRIES: StreamId = StreamId::MAX;

fn xread(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    xread_generic(ctx, args, r, false);
}

fn xreadgroup(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    xread_generic(ctx, args, r, true);
}

fn xread_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, xreadgroup: bool) {
    let a = match parse_read_args(args, xreadgroup, crate::scripting::in_script(ctx)) {
        Ok(a) => a,
        Err(e) => return r.error(&e),
    };
    let mut ids = Vec::with_capacity(a.streams);
    for k in 0..a.streams {
        let key = args[a.streams_at + k];
        let idarg = args[a.streams_at + a.streams + k];
        let s = match ctx.lookup_read::<StreamKind>(key) {
            Err(WrongType) => return r.error(err::WRONGTYPE),
            Ok(e) => e.map(|e| &*stream_mut(e)),
        };
        if let Some((gname, _)) = a.group {
            if !s.is_some_and(|s| s.groups.contains_key(gname)) {
                return nogroup(r, key, gname, b" in XREADGROUP with GROUP option");
            }
        }
        if idarg == b"$" {
            if xreadgroup {
                return r.error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            }
            ids.push(s.map_or(StreamId::MIN, |s| s.last_id));
            continue;
        }
        if idarg == b">" {
            if !xreadgroup {
                return r.error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
            }
            ids.push(NEW_ENTRIES);
            continue;
        }
        match parse_strict(idarg) {
            Ok(id) => ids.push(id),
            Err(()) => return r.error(INVALID_ID),
        }
    }
    let mut body = Vec::new();
    let mut served = 0;
    let mut props = Props::new(ctx);
    for (k, id) in ids.iter().enumerate() {
        let key = args[a.streams_at + k];
        let mut inner = Reply::new(&mut body, r.resp);
        if serve_one(ctx, key, *id, &a, &mut inner, &mut props) {
            served += 1;
        }
    }
    if served > 0 {
        if r.resp == 2 {
            r.array(served);
        } else {
            r.map(served);
        }
        r.raw(&body);
        props.finish(ctx);
        return;
    }
    if a.timeout_ms != -1 && !ctx.in_multi {
        if let Some(req) = block_request(ctx, args, &a, &ids) {
            ctx.home().blocking.request = Some(req);
            return;
        }
    }
    r.null_array();
}

/// The blocking request of an XREAD/XREADGROUP that found nothing.
fn block_request(ctx: &mut Ctx, args: &[&[u8]], a: &ReadArgs, ids: &[StreamId]) -> Option<crate::messaging::blocking::BlockRequest> {
    let deadline_ms = if a.timeout_ms == 0 { 0 } else { ctx.now_ms + a.timeout_ms };
    let keys: Vec<Vec<u8>> = (0..a.streams).map(|k| args[a.streams_at + k].to_vec()).collect();
    let op = crate::messaging::blocking::BlockOp::XRead {
        ids: ids.to_vec(),
        count: if a.count == 0 { 1000 } else { a.count },
        group: a.group.map(|(g, c)| (g.to_vec(), c.to_vec())),
        noack: a.noack,
    };
    Some(crate::messaging::blocking::BlockRequest { keys, op, deadline_ms, slowlog: None })
}

/// Serves stream `key` from after `gt` (XREAD) or for the group (XREADGROUP)
/// into `r` as `key, [entries]`; false when there was nothing to serve.
pub(crate) fn serve_one(ctx: &mut Ctx, key: &[u8], gt: StreamId, a: &ReadArgs, r: &mut Reply, props: &mut Props) -> bool {
    let now = ctx.now_ms;
    let Ok(Some(e)) = ctx.lookup_write::<StreamKind>(key) else { return false };
    let s = stream_mut(e);
    let mut gt = gt;
    let mut history = false;
    match a.group {
        Some((gname, _)) => {
            let Some(g) = s.groups.get(gname) else { return false };
            if gt != NEW_ENTRIES {
                history = true;
            } else {
                let top = if s.length > 0 { s.edge_id(false) } else { None };
                match top {
                    Some(top) if top > g.last_id => gt = g.last_id,
                    _ => return false,
                }
            }
        }
        None => match s.edge_id(false) {
            Some(top) if top > gt => {}
            _ => return false,
        },
    }
    let start = gt.incr().unwrap_or(StreamId::MAX);
    if r.resp == 2 {
        r.array(2);
    }
    r.bulk(key);
    let Some((gname, cname)) = a.group else {
        reply_range(r, s, start, StreamId::MAX, a.count, false);
        return true;
    };
    // A new consumer is notified; it is propagated by the XCLAIMs that
    // follow, or under NOACK by an XGROUP CREATECONSUMER (below).
    let created = {
        let g = s.groups.get_mut(gname).expect("checked");
        let (c, new) = g.consumer_or_create(cname, now);
        c.seen_time = now;
        new
    };
    if history {
        let g = s.groups.get_mut(gname).expect("checked");
        let pel: Vec<StreamId> = g.consumers[cname].pel.range(start..).copied().take(if a.count == 0 { usize::MAX } else { a.count }).collect();
        r.array(pel.len());
        for id in pel {
            if reply_one(r, s, id) {
                let nack = s.groups.get_mut(gname).expect("checked").pel.get_mut(&id).expect("pending");
                nack.delivery_time = now;
                nack.delivery_count += 1;
            } else {
                r.array(2);
                reply_id(r, id);
                r.null_array();
            }
        }
    } else {
        let mut got: Vec<StreamId> = Vec::new();
        let mut buf = Vec::new();
        {
            let mut inner = Reply::new(&mut buf, r.resp);
            s.range(start, StreamId::MAX, false, |id, pairs| {
                reply_entry(&mut inner, id, pairs);
                got.push(id);
                a.count == 0 || got.len() < a.count
            });
        }
        r.array(got.len());
        r.raw(&buf);
        let mut last = None;
        for id in &got {
            let in_range = s.has_tombstones_from(*id);
            let estimate = s.estimate_entries_read(*id);
            let entries_added = s.entries_added;
            let g = s.groups.get_mut(gname).expect("checked");
            if *id > g.last_id {
                if g.entries_read != -1 && !in_range {
                    g.entries_read += 1;
                } else if entries_added != 0 {
                    g.entries_read = estimate;
                }
                g.last_id = *id;
                last = Some(());
            }
            if !a.noack {
                g.deliver(*id, cname, now);
                let nack = &g.pel[id];
                let (t, n) = (nack.delivery_time, nack.delivery_count);
                props.xclaim(key, gname, g, *id, (cname, t, n));
            }
        }
        // 7.0 propagates the group's new last ID only under NOACK: else
        // the XCLAIMs carry it (LASTID).
        // Under NOACK no XCLAIM names the consumer: 7.0.15 propagates an
        // XGROUP CREATECONSUMER first whenever entries were delivered
        // (seen with redis-server 7.0.15's AOF, also for a consumer that
        // existed; nothing when none were), so that a replica or an AOF
        // reload has the consumer (TCL unit type/stream-cgroups, "XREADGROUP
        // with NOACK creates consumer").
        if last.is_some() && a.noack {
            props.createconsumer(key, gname, cname);
            let g = &s.groups[gname];
            props.setid(key, gname, g);
        }
    }
    let shard = ctx.shards.of(key);
    shard.dirty += 1 + created as u64;
    if created {
        let db = ctx.db;
        ctx.notify_in(db, notify::STREAM, "xgroup-createconsumer", key);
    }
    true
}

/// Whether a reader blocked on `keys` with `op` gets something from
/// stream `s` at `key` now (Redis compares the stream's last ID, or the
/// group's, with what it waits past); a vanished group is served too
/// (with an error).
pub fn can_serve(s: &Stream, key: &[u8], keys: &[Vec<u8>], op: &crate::messaging::blocking::BlockOp) -> bool {
    let crate::messaging::blocking::BlockOp::XRead { ids, group, .. } = op else { return false };
    let Some(i) = keys.iter().position(|k| k == key) else { return false };
    match group {
        Some((g, _)) => s.groups.get(g).is_none_or(|g| s.last_id > g.last_id),
        None => s.last_id > ids[i],
    }
}

/// Serves a reader blocked on `keys` from `key`, which `can_serve` said
/// has something for it: the reply holds that one stream.
pub fn serve_blocked(ctx: &mut Ctx, key: &[u8], keys: &[Vec<u8>], op: &crate::messaging::blocking::BlockOp, r: &mut Reply) {
    let crate::messaging::blocking::BlockOp::XRead { ids, count, group, noack } = op else { return r.null_array() };
    let i = keys.iter().position(|k| k == key).unwrap_or(0);
    if let Some((g, _)) = group {
        let exists = match ctx.lookup_write::<StreamKind>(key) {
            Ok(Some(e)) => stream_mut(e).groups.contains_key(g),
            _ => return r.error("UNBLOCKED the stream key no longer exists"),
        };
        if !exists {
            return r.error("NOGROUP the consumer group this client was blocked on no longer exists");
        }
    }
    let a = ReadArgs { timeout_ms: 0, count: *count, streams_at: 0, streams: 1, noack: *noack, group: group.as_ref().map(|(g, c)| (&g[..], &c[..])) };
    let gt = if group.is_some() { NEW_ENTRIES } else { ids[i] };
    let mut props = Props::new(ctx);
    let mut body = Vec::new();
    let served = {
        let mut inner = Reply::new(&mut body, r.resp);
        serve_one(ctx, key, gt, &a, &mut inner, &mut props)
    };
    if r.resp == 2 {
        r.array(1);
    } else {
        r.map(1);
    }
    if served {
        r.raw(&body);
    } else {
        if r.resp == 2 {
            r.array(2);
        }
        r.bulk(key);
        r.array(0);
    }
    props.finish(ctx);
}

// ---------------------------------------------------------------------
// XINFO
// ---------------------------------------------------------------------

fn xinfo_help(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    help_or_syntax_error(
        r,
        args,
        &[
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
            "HELP",
            "    Prints this help.",
        ],
    );
}

/// Nodes of the radix tree Redis would build over the nodes' master IDs
/// (`rax->numnodes`): a compressed trie of 16-byte keys.
fn rax_nodes(s: &Stream) -> usize {
    fn count(keys: &[[u8; 16]], depth: usize) -> usize {
        if keys.is_empty() {
            return 1;
        }
        if depth == 16 {
            return 1;
        }
        let first = &keys[0];
        let last = &keys[keys.len() - 1];
        // Sorted keys: the common prefix of all is that of the first and last.
        let mut l = depth;
        while l < 16 && first[l] == last[l] {
            l += 1;
        }
        if l > depth {
            return 1 + count(keys, l);
        }
        let mut n = 1;
        let mut i = 0;
        while i < keys.len() {
            let c = keys[i][depth];
            let mut j = i;
            while j < keys.len() && keys[j][depth] == c {
                j += 1;
            }
            n += count(&keys[i..j], depth + 1);
            i = j;
        }
        n
    }
    let keys: Vec<[u8; 16]> = s.nodes.keys().map(|k| k.encode()).collect();
    count(&keys, 0)
}

/// A group's lag (`streamReplyWithCGLag`): None when unknown.
fn lag(s: &Stream, g: &Group) -> Option<i64> {
    if s.entries_added == 0 {
        return Some(0);
    }
    if g.entries_read != -1 && !s.has_tombstones_from(g.last_id) {
        return Some(s.entries_added as i64 - g.entries_read);
    }
    let read = s.estimate_entries_read(g.last_id);
    (read != -1).then(|| s.entries_added as i64 - read)
}

/// XINFO STREAM FULL's `pending` of a group (with the consumers' names)
/// or of a consumer: at most `limit` of `ids`.
fn reply_pending<'a>(r: &mut Reply, g: &Group, ids: impl ExactSizeIterator<Item = &'a StreamId>, limit: usize, with_consumer: bool) {
    r.bulk(b"pending");
    let n = ids.len().min(limit);
    r.array(n);
    for id in ids.take(n) {
        let nack = &g.pel[id];
        r.array(if with_consumer { 4 } else { 3 });
        reply_id(r, *id);
        if with_consumer {
            r.bulk(&nack.consumer);
        }
        r.int(nack.delivery_time);
        r.int(nack.delivery_count as i64);
    }
}

/// A map of `n` fields whose first is `name`.
fn named(r: &mut Reply, n: usize, name: &[u8]) {
    r.map(n);
    r.bulk(b"name");
    r.bulk(name);
}

fn field_int(r: &mut Reply, name: &[u8], v: i64) {
    r.bulk(name);
    r.int(v);
}

fn field_id(r: &mut Reply, name: &[u8], id: StreamId) {
    r.bulk(name);
    reply_id(r, id);
}

fn field_opt_int(r: &mut Reply, name: &[u8], v: Option<i64>) {
    r.bulk(name);
    match v {
        Some(n) => r.int(n),
        None => r.null(),
    }
}

fn xinfo(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[2];
    let now = ctx.now_ms;
    let s = match ctx.lookup_read::<StreamKind>(key) {
        Ok(Some(e)) => &*stream_mut(e),
        Ok(None) => return r.error(err::NO_SUCH_KEY),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let opt = args[1];
    if eq_ic(opt, "consumers") && args.len() == 4 {
        let Some(g) = s.groups.get(args[3]) else {
            return r.error_parts(&[b"NOGROUP No such consumer group '", cstr(args[3]), b"' for key name '", cstr(key), b"'"]);
        };
        r.array(g.consumers.len());
        for (name, c) in &g.consumers {
            named(r, 3, name);
            field_int(r, b"pending", c.pel.len() as i64);
            field_int(r, b"idle", (now - c.seen_time).max(0));
        }
    } else if eq_ic(opt, "groups") && args.len() == 3 {
        r.array(s.groups.len());
        for (name, g) in &s.groups {
            named(r, 6, name);
            field_int(r, b"consumers", g.consumers.len() as i64);
            field_int(r, b"pending", g.pel.len() as i64);
            field_id(r, b"last-delivered-id", g.last_id);
            field_opt_int(r, b"entries-read", (g.entries_read != -1).then_some(g.entries_read));
            field_opt_int(r, b"lag", lag(s, g));
        }
    } else if eq_ic(opt, "stream") {
        let rest = &args[3..];
        let mut count: i64 = 10;
        let full = !rest.is_empty();
        if full {
            if (rest.len() != 1 && rest.len() != 3) || !eq_ic(rest[0], "full") {
                return subcommand_syntax_error(r, args);
            }
            if rest.len() == 3 {
                if !eq_ic(rest[1], "count") {
                    return subcommand_syntax_error(r, args);
                }
                let Some(n) = super::parse_i64(rest[2]) else { return r.error(err::NOT_INTEGER) };
                count = n.max(0);
            }
        }
        r.map(if full { 9 } else { 10 });
        field_int(r, b"length", s.length as i64);
        field_int(r, b"radix-tree-keys", s.nodes.len() as i64);
        field_int(r, b"radix-tree-nodes", rax_nodes(s) as i64);
        field_id(r, b"last-generated-id", s.last_id);
        field_id(r, b"max-deleted-entry-id", s.max_deleted_entry_id);
        field_int(r, b"entries-added", s.entries_added as i64);
        field_id(r, b"recorded-first-entry-id", s.first_id);
        if !full {
            field_int(r, b"groups", s.groups.len() as i64);
            r.bulk(b"first-entry");
            if !reply_first(r, s, StreamId::MIN, StreamId::MAX, false) {
                r.null();
            }
            r.bulk(b"last-entry");
            if !reply_first(r, s, StreamId::MIN, StreamId::MAX, true) {
                r.null();
            }
            return;
        }
        let limit = if count == 0 { usize::MAX } else { count as usize };
        r.bulk(b"entries");
        reply_range(r, s, StreamId::MIN, StreamId::MAX, if count == 0 { 0 } else { count as usize }, false);
        r.bulk(b"groups");
        r.array(s.groups.len());
        for (name, g) in &s.groups {
            named(r, 7, name);
            field_id(r, b"last-delivered-id", g.last_id);
            field_opt_int(r, b"entries-read", (g.entries_read != -1).then_some(g.entries_read));
            field_opt_int(r, b"lag", lag(s, g));
            field_int(r, b"pel-count", g.pel.len() as i64);
            reply_pending(r, g, g.pel.keys(), limit, true);
            r.bulk(b"consumers");
            r.array(g.consumers.len());
            for (cname, c) in &g.consumers {
                named(r, 4, cname);
                field_int(r, b"seen-time", c.seen_time);
                field_int(r, b"pel-count", c.pel.len() as i64);
                reply_pending(r, g, c.pel.iter(), limit, false);
            }
        }
    } else {
        subcommand_syntax_error(r, args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis() {
        assert_eq!(parse_id_generic(b"5", 7, true, false), Ok((StreamId::new(5, 7), true)));
        assert_eq!(parse_id_generic(b"5-*", 0, true, true), Ok((StreamId::new(5, 0), false)));
        assert!(parse_id_generic(b"5-*", 0, true, false).is_err());
        assert!(parse_id_generic(b"-", 0, true, false).is_err());
        assert_eq!(parse_id_generic(b"+", 0, false, false), Ok((StreamId::MAX, true)));
        assert_eq!(parse_id_generic(b"007-+3", 0, true, false), Ok((StreamId::new(7, 3), true)));
        assert!(parse_id_generic(b"-5", 0, true, false).is_err());
        assert!(parse_id_generic(b"18446744073709551616", 0, true, false).is_err());
        assert_eq!(string2ull(b" 12"), Some(12));
        assert_eq!(string2ull(b"-1"), None);
        assert_eq!(string2ull(b"-01"), Some(u64::MAX));
    }
}
