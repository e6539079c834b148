//! The blocking pops: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP (t_list.c) and
//! BZPOPMIN BZPOPMAX BZMPOP (t_zset.c), as Redis 7.0.
//!
//! A handler checks its arguments in Redis's order, then serves at once
//! from the first of its keys that has data (exactly as the non-blocking
//! form, propagated as that form). With no data it replies nothing and
//! leaves a `BlockRequest` on the shard that ran it: the network loop
//! blocks the client (`network::blocking`). Inside a transaction
//! (`Ctx::in_multi`) it does not block: it replies as a timeout does.
//!
//! `serve` is the one place a blocked client's pop happens, for both
//! paths: on the owner of the key, when the key gets data.

use super::list::{drop_if_empty, list_mut, lmove_generic, notify_then_del, parse_side, pop_event, pop_range_reply, wrote, MpopOptions};
use super::lookup::{ListKind, WrongType, ZSetKind};
use super::zset::parse_min_max;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::messaging::blocking::{parse_timeout, BlockOp, BlockRequest};
use crate::protocol::Reply;

pub fn commands() -> Vec<CommandSpec> {
    const LIST_SLOW: &[&str] = &["@write", "@list", "@slow", "@blocking"];
    const ZSET_FAST: &[&str] = &["@write", "@sortedset", "@fast", "@blocking"];
    const ZSET_SLOW: &[&str] = &["@write", "@sortedset", "@slow", "@blocking"];
    let c = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler);
    vec![
        c("blpop", -3, WRITE | NOSCRIPT | BLOCKING, blpop)
            .keys(1, -2, 1)
            .group("list")
            .acl(LIST_SLOW)
            .doc("2.0.0", "Remove and get the first element in a list, or block until one is available"),
        c("brpop", -3, WRITE | NOSCRIPT | BLOCKING, brpop)
            .keys(1, -2, 1)
            .group("list")
            .acl(LIST_SLOW)
            .doc("2.0.0", "Remove and get the last element in a list, or block until one is available"),
        c("blmove", 6, WRITE | DENYOOM | NOSCRIPT | BLOCKING, blmove)
            .keys(1, 2, 1)
            .group("list")
            .acl(LIST_SLOW)
            .doc("6.2.0", "Pop an element from a list, push it to another list and return it; or block until one is available"),
        c("brpoplpush", 4, WRITE | DENYOOM | NOSCRIPT | BLOCKING, brpoplpush)
            .keys(1, 2, 1)
            .group("list")
            .acl(LIST_SLOW)
            .doc("2.2.0", "Pop an element from a list, push it to another list and return it; or block until one is available"),
        c("blmpop", -5, WRITE | BLOCKING, blmpop)
            .keys(0, 0, 0)
            .find_keys(numkeys_at_2)
            .group("list")
            .acl(LIST_SLOW)
            .doc("7.0.0", "Pop elements from a list, or block until one is available"),
        c("bzpopmin", -3, WRITE | NOSCRIPT | FAST | BLOCKING, bzpopmin)
            .keys(1, -2, 1)
            .group("sorted-set")
            .acl(ZSET_FAST)
            .doc("5.0.0", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available"),
        c("bzpopmax", -3, WRITE | NOSCRIPT | FAST | BLOCKING, bzpopmax)
            .keys(1, -2, 1)
            .group("sorted-set")
            .acl(ZSET_FAST)
            .doc("5.0.0", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available"),
        c("bzmpop", -5, WRITE | BLOCKING, bzmpop)
            .keys(0, 0, 0)
            .find_keys(numkeys_at_2)
            .group("sorted-set")
            .acl(ZSET_SLOW)
            .doc("7.0.0", "Remove and return members with scores in a sorted set or block until one is available"),
    ]
}

/// BLMPOP's and BZMPOP's keys: `numkeys` at 2, after the timeout.
fn numkeys_at_2(args: &[&[u8]], out: &mut Vec<usize>) {
    super::numkeys_keys(args, 2, out);
}

/// Pops for `op` from `key`, which holds a value of the kind `op` waits
/// for (looked up by the caller), replying in the blocking command's form;
/// propagated as the non-blocking form Redis 7.0 propagates.
pub fn serve(ctx: &mut Ctx, key: &[u8], op: &BlockOp, r: &mut Reply) {
    match op {
        BlockOp::Pop { head } => {
            let Ok(Some(e)) = ctx.lookup_write::<ListKind>(key) else { return r.null_array() };
            let q = list_mut(&mut e.value);
            let v = if *head { q.pop_head() } else { q.pop_tail() }.expect("lists are never empty");
            r.array(2);
            r.bulk(key);
            r.bulk(&v);
            let deleted = drop_if_empty(ctx, key);
            notify_then_del(ctx, key, pop_event(*head), deleted);
            wrote(ctx, key, 1);
            ctx.propagate_as(&[if *head { b"LPOP" } else { b"RPOP" }, key]);
        }
        BlockOp::MPop { head, count } => {
            let Ok(Some(e)) = ctx.lookup_write::<ListKind>(key) else { return r.null_array() };
            let q = list_mut(&mut e.value);
            r.array(2);
            r.bulk(key);
            let popped = pop_range_reply(q, *head, *count, r);
            let deleted = drop_if_empty(ctx, key);
            notify_then_del(ctx, key, pop_event(*head), deleted);
            wrote(ctx, key, popped);
            let n = itoa::Buffer::new().format(popped).as_bytes().to_vec();
            ctx.propagate_as(&[if *head { b"LPOP" } else { b"RPOP" }, key, &n]);
        }
        BlockOp::Move { dst, from_head, to_head, sides } => {
            let dirty = ctx.shards.of(dst).dirty;
            lmove_generic(ctx, r, key, dst, *from_head, *to_head);
            if ctx.shards.of(dst).dirty != dirty {
                match sides {
                    Some((from, to)) => ctx.propagate_as(&[b"LMOVE", key, dst, from, to]),
                    None => ctx.propagate_as(&[b"RPOPLPUSH", key, dst]),
                }
            }
        }
        BlockOp::ZPop { max } => {
            super::zset::zpop_blocking(ctx, key, *max, None, r);
            ctx.propagate_as(&[if *max { b"ZPOPMAX" } else { b"ZPOPMIN" }, key]);
        }
        BlockOp::ZMPop { max, count } => {
            let popped = super::zset::zpop_blocking(ctx, key, *max, Some(*count), r);
            let n = itoa::Buffer::new().format(popped).as_bytes().to_vec();
            ctx.propagate_as(&[if *max { b"ZPOPMAX" } else { b"ZPOPMIN" }, key, &n]);
        }
        // Served with its keys by `stream::serve_blocked`.
        BlockOp::XRead { .. } => r.null_array(),
    }
}

/// The common end of every blocking handler: serve from the first key with
/// data, else reply as a timeout inside a transaction, else block.
fn pop_or_block(ctx: &mut Ctx, keys: &[&[u8]], op: BlockOp, deadline_ms: i64, r: &mut Reply) {
    let list = op.wants_list();
    for &key in keys {
        let found = if list { ctx.lookup_write::<ListKind>(key).map(|e| e.is_some()) } else { ctx.lookup_write::<ZSetKind>(key).map(|e| e.is_some()) };
        match found {
            Err(WrongType) => return r.error(err::WRONGTYPE),
            Ok(false) => continue,
            Ok(true) => return serve(ctx, key, &op, r),
        }
    }
    if ctx.in_multi {
        // Redis's CLIENT_DENY_BLOCKING: the timeout's reply (a null bulk
        // for the moves, which reply one element).
        return match op {
            BlockOp::Move { .. } => r.null(),
            _ => r.null_array(),
        };
    }
    // A woken BLMOVE propagates as LMOVE with Redis's own `left`/`right`
    // (`getStringObjectFromListPosition`), not the words the client sent:
    // those are kept only when it is served at once, as Redis does.
    let op = match op {
        BlockOp::Move { dst, from_head, to_head, sides: Some(_) } => {
            let word = |head: bool| if head { b"left".to_vec() } else { b"right".to_vec() };
            BlockOp::Move { dst, from_head, to_head, sides: Some((word(from_head), word(to_head))) }
        }
        op => op,
    };
    let keys = keys.iter().map(|k| k.to_vec()).collect();
    ctx.home().blocking.request = Some(BlockRequest { keys, op, deadline_ms, slowlog: None });
}

/// BLPOP / BRPOP key [key ...] timeout.
/// BLPOP/BRPOP/BZPOPMIN/BZPOPMAX key [key ...] timeout: `op` is the pop to
/// run on the first non-empty key, or to wait for.
fn bpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, op: BlockOp) {
    let deadline = match parse_timeout(args[args.len() - 1], ctx.now_ms) {
        Ok(d) => d,
        Err(e) => return r.error(e),
    };
    pop_or_block(ctx, &args[1..args.len() - 1], op, deadline, r);
}

fn blpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bpop(ctx, args, r, BlockOp::Pop { head: true });
}

fn brpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bpop(ctx, args, r, BlockOp::Pop { head: false });
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout.
fn blmove(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (Some(from_head), Some(to_head)) = (parse_side(args[3]), parse_side(args[4])) else {
        return r.error(err::SYNTAX);
    };
    let sides = Some((args[3].to_vec(), args[4].to_vec()));
    bmove(ctx, args[1], args[2], args[5], BlockOp::Move { dst: args[2].to_vec(), from_head, to_head, sides }, r);
}

/// BRPOPLPUSH source destination timeout.
fn brpoplpush(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bmove(ctx, args[1], args[2], args[3], BlockOp::Move { dst: args[2].to_vec(), from_head: false, to_head: true, sides: None }, r);
}

/// Redis's `blmoveGenericCommand`: the destination is looked at only
/// when the source has data.
fn bmove(ctx: &mut Ctx, src: &[u8], _dst: &[u8], timeout: &[u8], op: BlockOp, r: &mut Reply) {
    let deadline = match parse_timeout(timeout, ctx.now_ms) {
        Ok(d) => d,
        Err(e) => return r.error(e),
    };
    pop_or_block(ctx, &[src], op, deadline, r);
}

/// BLMPOP / BZMPOP timeout numkeys key [key ...] side [COUNT count]: the
/// options, then the timeout, then the keys (Redis's order of errors).
fn bmpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, list: bool) {
    let parsed = MpopOptions::parse(args, 2, if list { parse_side } else { parse_min_max });
    let MpopOptions { keys, side, count } = match parsed {
        Ok(p) => p,
        Err(e) => return r.error(e),
    };
    let deadline = match parse_timeout(args[1], ctx.now_ms) {
        Ok(d) => d,
        Err(e) => return r.error(e),
    };
    let op = if list { BlockOp::MPop { head: side, count } } else { BlockOp::ZMPop { max: side, count } };
    pop_or_block(ctx, &args[keys], op, deadline, r);
}

fn blmpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bmpop(ctx, args, r, true);
}

fn bzmpop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bmpop(ctx, args, r, false);
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout.
fn bzpopmin(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bpop(ctx, args, r, BlockOp::ZPop { max: false });
}

fn bzpopmax(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bpop(ctx, args, r, BlockOp::ZPop { max: true });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::CommandTable;
    use crate::server::Server;
    use crate::shard::hold::ShardSet;
    use crate::shard::ShardState;

    /// Runs `cmd` on a one-shard server (`in_multi` as given); returns the
    /// reply, whether the handler asked to block, and what was propagated.
    fn run(shard: &mut ShardState, server: &Server, in_multi: bool, cmd: &str) -> (Vec<u8>, bool, Vec<u8>) {
        let args = args(cmd);
        let mut set = ShardSet::new(1);
        // SAFETY: `shard` outlives `set`, and nothing else touches it meanwhile.
        unsafe { set.set(0, shard as *mut ShardState) };
        let id = CommandTable::get().lookup(args[0]).unwrap();
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out, 2);
        let mut ctx = Ctx::new(&mut set, server, 0, 0, 2, 1_700_000_000_000, None);
        ctx.in_multi = in_multi;
        crate::exec::call(&mut ctx, &mut crate::exec::Clock::new(), id, &args, &mut r, &crate::exec::Caller::LOCAL, &mut Vec::new());
        drop(set);
        let blocked = shard.blocking.request.take().is_some();
        (out, blocked, shard.stream.take().1)
    }

    #[test]
    fn inside_multi_nothing_blocks_and_pops_propagate_as_the_plain_forms() {
        let config = crate::config::Config { save: Vec::new(), ..Default::default() };
        let mut shard = ShardState::new(0, 1, config);
        shard.stream.set_on(true);
        let server = Server::new(1, 100, 0);
        for (cmd, reply) in [
            ("blpop k 0", &b"*-1\r\n"[..]),
            ("brpop k j 0", b"*-1\r\n"),
            ("blmove k d left right 0", b"$-1\r\n"),
            ("brpoplpush k d 0", b"$-1\r\n"),
            ("blmpop 0 1 k left", b"*-1\r\n"),
            ("bzpopmin k 0", b"*-1\r\n"),
            ("bzmpop 0 1 k max", b"*-1\r\n"),
        ] {
            assert_eq!(run(&mut shard, &server, true, cmd), (reply.to_vec(), false, vec![]), "{cmd}");
            assert_eq!(run(&mut shard, &server, false, cmd), (vec![], true, vec![]), "{cmd}");
        }
        run(&mut shard, &server, false, "rpush k a b c d e");
        run(&mut shard, &server, false, "zadd z 1 a 2 b 3 c");
        // Every batch taken from a stream starts with its SELECT.
        let resp = |cmds: &[&str]| {
            let mut out = Vec::new();
            for c in std::iter::once(&"SELECT 0").chain(cmds) {
                crate::persistence::aof::append::append_command(&mut out, &args(c));
            }
            out
        };
        // (Outside MULTI: inside, the transaction's writes reach the stream
        // at EXEC's end, `propagate::exec_end`, tested with transactions.)
        let (out, blocked, aof) = run(&mut shard, &server, false, "blpop k 0");
        assert_eq!((out, blocked, aof), (b"*2\r\n$1\r\nk\r\n$1\r\na\r\n".to_vec(), false, resp(&["LPOP k"])));
        assert_eq!(run(&mut shard, &server, false, "brpop k 0").2, resp(&["RPOP k"]));
        assert_eq!(run(&mut shard, &server, false, "blmove k d left RIGHT 0").2, resp(&["LMOVE k d left RIGHT"]));
        assert_eq!(run(&mut shard, &server, false, "brpoplpush k d 0").2, resp(&["RPOPLPUSH k d"]));
        assert_eq!(run(&mut shard, &server, false, "blmpop 0 1 k left count 5").2, resp(&["LPOP k 1"]));
        assert_eq!(run(&mut shard, &server, false, "bzpopmax z 0").2, resp(&["ZPOPMAX z"]));
        assert_eq!(run(&mut shard, &server, false, "bzmpop 0 1 z min count 9").2, resp(&["ZPOPMIN z 2"]));
    }

    fn args(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn mpop_options_in_redis_order() {
        assert_eq!(MpopOptions::parse(&args("blmpop 0 2 a b left count 3"), 2, parse_side), Ok(MpopOptions { keys: 3..5, side: true, count: 3 }));
        assert_eq!(MpopOptions::parse(&args("blmpop 0 0 a left"), 2, parse_side), Err("ERR numkeys should be greater than 0"));
        assert_eq!(MpopOptions::parse(&args("blmpop 0 1 a up"), 2, parse_side), Err(err::SYNTAX));
        assert_eq!(MpopOptions::parse(&args("blmpop 0 3 a left"), 2, parse_side), Err(err::SYNTAX));
        assert_eq!(MpopOptions::parse(&args("bzmpop 0 1 a max count 0"), 2, parse_min_max), Err("ERR count should be greater than 0"));
        assert_eq!(MpopOptions::parse(&args("bzmpop 0 1 a max count 1 count 1"), 2, parse_min_max), Err(err::SYNTAX));
    }
}
