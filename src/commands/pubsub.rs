//! Pub/sub commands (Redis's pubsub.c): SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
//! PUNSUBSCRIBE, SSUBSCRIBE, SUNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB.
//!
//! The machinery (owner tables, batched delivery) is `messaging::pubsub`.
//! The (un)subscribe commands run on the connection's thread with the owner
//! shards of their channels held (`Route::Client`: the shards come from the
//! arguments and, without arguments, from the client's own subscriptions),
//! so the owners' tables are written before the confirmation leaves.
//! PUBLISH and SPUBLISH run on the channel's owner, like a one-key command.

use super::{flags::*, CommandSpec, Ctx, Route};
use crate::commands::ClientState;
use crate::messaging::pubsub::{notification_channel, owner, table_shards, Kind, Subscriber};
use crate::protocol::Reply;
use crate::shard::hold::{ShardMask, ShardSet};

const SUB: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;
const PUB: u32 = PUBSUB | LOADING | STALE | FAST;
const INTROSPECT: u32 = PUBSUB | LOADING | STALE;
const SLOW: &[&str] = &["@pubsub", "@slow"];
const FAST_CAT: &[&str] = &["@pubsub", "@fast"];

/// One pub/sub table entry: (name, arity, flags, handler, route, since, summary).
type Entry = (&'static str, i32, u32, super::Handler, Route, &'static str, &'static str);

const ENTRIES: &[Entry] = &[
    ("subscribe", -2, SUB, subscribe, Route::Client(subscribe_route), "2.0.0", "Listen for messages published to the given channels"),
    ("unsubscribe", -1, SUB, unsubscribe, Route::Client(unsubscribe_route), "2.0.0", "Stop listening for messages posted to the given channels"),
    ("psubscribe", -2, SUB, psubscribe, Route::Client(pattern_route), "2.0.0", "Listen for messages published to channels matching the given patterns"),
    (
        "punsubscribe",
        -1,
        SUB,
        punsubscribe,
        Route::Client(pattern_route),
        "2.0.0",
        "Stop listening for messages posted to channels matching the given patterns",
    ),
    ("ssubscribe", -2, SUB, ssubscribe, Route::Client(subscribe_route), "7.0.0", "Listen for messages published to the given shard channels"),
    ("sunsubscribe", -1, SUB, sunsubscribe, Route::Client(sunsubscribe_route), "7.0.0", "Stop listening for messages posted to the given shard channels"),
    ("publish", 3, PUB, publish, Route::Custom(channel_route), "2.0.0", "Post a message to a channel"),
    ("spublish", 3, PUB, spublish, Route::Custom(channel_route), "7.0.0", "Post a message to a shard channel"),
    ("pubsub", -2, 0, container, Route::Local, "2.8.0", "A container for Pub/Sub commands"),
    ("pubsub|channels", -2, INTROSPECT, channels, Route::All, "2.8.0", "List active channels"),
    ("pubsub|numpat", 2, INTROSPECT, numpat, Route::Local, "2.8.0", "Get the count of unique patterns pattern subscriptions"),
    ("pubsub|numsub", -2, INTROSPECT, numsub, Route::Custom(numsub_route), "2.8.0", "Get the count of subscribers for channels"),
    ("pubsub|shardchannels", -2, INTROSPECT, shardchannels, Route::All, "7.0.0", "List active shard channels"),
    ("pubsub|shardnumsub", -2, INTROSPECT, shardnumsub, Route::Custom(numsub_route), "7.0.0", "Get the count of subscribers for shard channels"),
    ("pubsub|help", 2, LOADING | STALE, help, Route::Local, "6.2.0", "Show helpful text about the different subcommands"),
];

pub fn commands() -> Vec<CommandSpec> {
    ENTRIES
        .iter()
        .map(|&(name, arity, flags, handler, route, since, summary)| {
            let mut spec = CommandSpec::new(name, arity, flags, handler);
            // The shard-channel commands have Redis's key specs (COMMAND
            // INFO, GETKEYS); they route as the others do.
            match name {
                "ssubscribe" | "sunsubscribe" => spec = spec.keys(1, -1, 1),
                "spublish" => spec = spec.keys(1, 1, 1),
                _ => {}
            }
            let acl: &'static [&'static str] = match name {
                "pubsub" | "pubsub|help" => &["@slow"],
                _ if flags & FAST != 0 => FAST_CAT,
                _ => SLOW,
            };
            // PUBSUB HELP has no @pubsub category in Redis, which the
            // table would derive from the group; COMMAND DOCS reads the
            // group from `docs_data` (Redis's own "pubsub").
            let group = if name == "pubsub|help" { "server" } else { "pubsub" };
            spec.route(route).group(group).acl(acl).doc(since, summary)
        })
        .collect()
}

/// Whether command `name` may run on a RESP2 connection in subscribed mode
/// (Redis's processCommand check).
pub fn allowed_in_subscribed_mode(name: &str) -> bool {
    matches!(name, "ping" | "subscribe" | "ssubscribe" | "unsubscribe" | "sunsubscribe" | "psubscribe" | "punsubscribe" | "quit" | "reset")
}

/// The (un)subscribe commands: their confirmations are pushes, sent even
/// under CLIENT REPLY OFF/SKIP, as Redis 7.0.15 sends them.
pub fn is_subscription_command(name: &str) -> bool {
    matches!(name, "subscribe" | "ssubscribe" | "unsubscribe" | "sunsubscribe" | "psubscribe" | "punsubscribe")
}

/// Redis's error for a command refused in subscribed mode.
pub fn subscribed_mode_error(name: &str) -> String {
    format!("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", name)
}

/// The shards whose tables hold `names` of `kind` (`table_shards`: a
/// notification channel's are on every shard).
fn owners<'a>(kind: Kind, names: impl Iterator<Item = &'a [u8]>, shards: usize) -> ShardMask {
    let mut m = ShardMask::default();
    for n in names {
        for s in table_shards(kind, n, shards).iter() {
            m.insert(s);
        }
    }
    m
}

fn channel_route(args: &[&[u8]], shards: usize) -> ShardMask {
    ShardMask::single(owner(args[1], shards))
}

fn numsub_route(args: &[&[u8]], shards: usize) -> ShardMask {
    // The owner's table is whole (a notification channel's too).
    let mut m = ShardMask::default();
    for n in &args[2..] {
        m.insert(owner(n, shards));
    }
    if m.is_empty() {
        ShardMask::single(0)
    } else {
        m
    }
}

fn subscribe_route(_c: &ClientState, args: &[&[u8]], shards: usize) -> ShardMask {
    let kind = if args[0].eq_ignore_ascii_case(b"ssubscribe") { Kind::Shard } else { Kind::Channel };
    owners(kind, args[1..].iter().copied(), shards)
}

fn unsubscribe_route(c: &ClientState, args: &[&[u8]], shards: usize) -> ShardMask {
    unsub_route(c, args, shards, Kind::Channel)
}

fn sunsubscribe_route(c: &ClientState, args: &[&[u8]], shards: usize) -> ShardMask {
    unsub_route(c, args, shards, Kind::Shard)
}

fn unsub_route(c: &ClientState, args: &[&[u8]], shards: usize, kind: Kind) -> ShardMask {
    if args.len() > 1 {
        owners(kind, args[1..].iter().copied(), shards)
    } else {
        owners(kind, c.pubsub.set(kind).iter().map(|n| &n[..]), shards)
    }
}

/// Patterns live on every shard: (un)subscribing one holds them all; a
/// PUNSUBSCRIBE of a client without patterns changes nothing.
fn pattern_route(c: &ClientState, args: &[&[u8]], shards: usize) -> ShardMask {
    if c.pubsub.patterns.is_empty() && args[0].eq_ignore_ascii_case(b"punsubscribe") {
        ShardMask::default()
    } else {
        ShardMask::all(shards)
    }
}

/// The shards RESET must hold to drop every subscription of the client.
pub fn reset_route(c: &ClientState, _args: &[&[u8]], shards: usize) -> ShardMask {
    if !c.pubsub.patterns.is_empty() {
        return ShardMask::all(shards);
    }
    let p = &c.pubsub;
    let mut m = owners(Kind::Channel, p.channels.iter().map(|n| &n[..]), shards);
    for s in owners(Kind::Shard, p.shard_channels.iter().map(|n| &n[..]), shards).iter() {
        m.insert(s);
    }
    m
}

fn container(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.error(super::err::SYNTAX);
}

/// Writes `me`'s subscription to `name` into the owner tables (every shard's
/// for a pattern or a notification channel); `add` false removes it.
fn register(shards: &mut ShardSet, kind: Kind, name: &[u8], me: Subscriber, shard_count: usize, add: bool) {
    for s in table_shards(kind, name, shard_count).iter() {
        let ps = &mut shards.get_mut(s).pubsub;
        if add {
            ps.add(kind, name, me);
        } else {
            ps.remove(kind, name, me);
        }
    }
}

fn confirm(r: &mut Reply, what: &str, name: Option<&[u8]>, count: usize) {
    r.push(3);
    r.bulk(what.as_bytes());
    match name {
        Some(n) => r.bulk(n),
        None => r.null(),
    }
    r.int(count as i64);
}

/// (P|S)SUBSCRIBE (`add`) and (P|S)UNSUBSCRIBE: one confirmation per
/// name, with the client's count after it; UNSUBSCRIBE without names drops
/// every subscription of the kind (one confirmation with a null name when
/// there is none).
fn change_subscriptions(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, kind: Kind, add: bool) {
    let (home, shard_count) = (ctx.home, ctx.shard_count);
    let Ctx { shards, client, .. } = ctx;
    let Some(c) = client.as_deref_mut() else {
        r.error("ERR subscriptions need a connection");
        return;
    };
    let me = Subscriber { shard: home as u32, token: c.pubsub.token };
    let what = if add { kind.names().0 } else { kind.names().1 };
    let all: Vec<Vec<u8>>;
    let names: Vec<&[u8]> = if args.len() == 1 {
        all = c.pubsub.set(kind).iter().cloned().collect();
        if all.is_empty() {
            confirm(r, what, None, c.pubsub.count_for(kind));
        }
        all.iter().map(|n| &n[..]).collect()
    } else {
        args[1..].to_vec()
    };
    for name in names {
        let changed = if add { c.pubsub.set_mut(kind).insert(name.to_vec()) } else { c.pubsub.set_mut(kind).swap_remove(name) };
        if changed {
            register(shards, kind, name, me, shard_count, add);
        }
        confirm(r, what, Some(name), c.pubsub.count_for(kind));
    }
    c.info_dirty = true;
}

/// RESET's part: every subscription of the client dropped, without
/// confirmations (Redis's `pubsubUnsubscribeAll*(c, 0)`). The owner shards
/// are held (`reset_route`).
pub fn unsubscribe_all_silently(ctx: &mut Ctx) {
    let (home, shard_count) = (ctx.home, ctx.shard_count);
    let Ctx { shards, client, .. } = ctx;
    let Some(c) = client.as_deref_mut() else {
        return;
    };
    if !c.pubsub.any() {
        return;
    }
    let me = Subscriber { shard: home as u32, token: c.pubsub.token };
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for name in std::mem::take(c.pubsub.set_mut(kind)) {
            register(shards, kind, &name, me, shard_count, false);
        }
    }
    c.info_dirty = true;
}

fn subscribe(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    change_subscriptions(ctx, args, r, Kind::Channel, true);
}
fn psubscribe(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    change_subscriptions(ctx, args, r, Kind::Pattern, true);
}
fn ssubscribe(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    // Inside EXEC the client may not block (Redis's CLIENT_DENY_BLOCKING):
    // Redis 7.0 lets SUBSCRIBE and PSUBSCRIBE through there, not SSUBSCRIBE.
    if ctx.in_multi {
        return r.error("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client");
    }
    change_subscriptions(ctx, args, r, Kind::Shard, true);
}
fn unsubscribe(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    change_subscriptions(ctx, args, r, Kind::Channel, false);
}
fn punsubscribe(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    change_subscriptions(ctx, args, r, Kind::Pattern, false);
}
fn sunsubscribe(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    change_subscriptions(ctx, args, r, Kind::Shard, false);
}

/// PUBLISH / SPUBLISH on the channel's owner (this shard, or one this
/// command holds): the reply is the number of receivers.
fn publish_kind(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, kind: Kind) {
    let home = ctx.home;
    let caller = match ctx.client.as_deref() {
        Some(c) => Some(Subscriber { shard: home as u32, token: c.pubsub.token }),
        None => ctx.shard(home).pubsub.remote_caller,
    };
    let o = owner(args[1], ctx.shard_count);
    let mut own = Vec::new();
    let receivers = ctx.shard_mut(o).pubsub.publish(kind, args[1], args[2], caller, &mut own);
    // The publisher is subscribed itself (RESP3): its message comes first.
    if !own.is_empty() {
        let mut rest: &[u8] = &own;
        while !rest.is_empty() {
            let len = crate::messaging::pubsub::message_len(rest).expect("publish wrote whole messages");
            crate::messaging::pubsub::append_for(r.buf, &rest[..len], r.resp);
            rest = &rest[len..];
        }
    }
    r.int(receivers);
    // Replicas get every PUBLISH (the AOF none), as Redis 7.0 does.
    if ctx.propagating() {
        ctx.propagate = crate::exec::propagate::Propagate::ReplOnly;
    }
}

fn publish(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    publish_kind(ctx, args, r, Kind::Channel);
}
fn spublish(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    publish_kind(ctx, args, r, Kind::Shard);
}

/// PUBSUB CHANNELS / SHARDCHANNELS [pattern]: every shard's channels.
fn list_channels(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, kind: Kind) {
    if args.len() > 3 {
        super::client::subcommand_syntax_error(r, args);
        return;
    }
    let pattern = args.get(2).copied();
    let mut names: Vec<&[u8]> = Vec::new();
    for s in 0..ctx.shard_count {
        let ps = &ctx.shard(s).pubsub;
        let table = if kind == Kind::Shard { &ps.shard_channels } else { &ps.channels };
        // A notification channel once, from its owner's copy.
        let listed = |k: &&[u8]| kind == Kind::Shard || !notification_channel(k) || owner(k, ctx.shard_count) == s;
        names.extend(table.keys().map(|k| &k[..]).filter(listed).filter(|k| pattern.is_none_or(|p| crate::config::glob_match(p, k, false))));
    }
    r.array(names.len());
    for n in names {
        r.bulk(n);
    }
}

fn channels(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    list_channels(ctx, args, r, Kind::Channel);
}
fn shardchannels(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    list_channels(ctx, args, r, Kind::Shard);
}

fn count_subscribers(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, kind: Kind) {
    r.array(2 * (args.len() - 2));
    for name in &args[2..] {
        let n = ctx.shard(owner(name, ctx.shard_count)).pubsub.subscribers(kind, name);
        r.bulk(name);
        r.int(n as i64);
    }
}

fn numsub(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    count_subscribers(ctx, args, r, Kind::Channel);
}
fn shardnumsub(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    count_subscribers(ctx, args, r, Kind::Shard);
}

/// Unique patterns: every shard has the whole pattern table.
fn numpat(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.int(ctx.shard(ctx.home).pubsub.patterns.len() as i64);
}

const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

fn help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    super::client::reply_help(r, HELP);
}

/// The PING reply of a RESP2 client in subscribed mode: `pong` and the
/// argument (or an empty string) as a two-element array.
pub fn subscribed_ping(r: &mut Reply, args: &[&[u8]]) {
    r.array(2);
    r.bulk(b"pong");
    r.bulk(args.get(1).copied().unwrap_or(b""));
}

/// Whether PING answers in the subscribed-mode form for this client.
pub fn wants_subscribed_ping(c: Option<&ClientState>) -> bool {
    c.is_some_and(|c| c.resp == 2 && c.in_pubsub_mode())
}
