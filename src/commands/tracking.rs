//! CLIENT TRACKING, CLIENT CACHING, CLIENT GETREDIR, CLIENT TRACKINGINFO
//! (Redis 7.0's `clientCommand` branches and `tracking.c`'s enable/disable).
//!
//! CLIENT TRACKING holds every shard (`Route::All`): REDIRECT must name a
//! live client, which may be any shard's, and BCAST prefixes are registered
//! on every shard. The machinery is in `messaging::tracking`.

use std::sync::atomic::Ordering;

use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::messaging::tracking::{flag, prefix_collision, BcastClient, TrackingMessage};
use crate::protocol::Reply;
use crate::util::eq_ic;

const CLIENT: u32 = NOSCRIPT | LOADING | STALE;
const CONN: &[&str] = &["@slow", "@connection"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("client|tracking", -3, CLIENT, tracking)
            .route(Route::All)
            .group("connection")
            .acl(CONN)
            .doc("6.0.0", "Enable or disable server assisted client side caching support"),
        CommandSpec::new("client|caching", 3, CLIENT, caching)
            .group("connection")
            .acl(CONN)
            .doc("6.0.0", "Instruct the server about tracking or not keys in the next request"),
        CommandSpec::new("client|getredir", 2, CLIENT, getredir)
            .group("connection")
            .acl(CONN)
            .doc("6.0.0", "Get tracking notifications redirection client ID if any"),
        CommandSpec::new("client|trackinginfo", 2, CLIENT, trackinginfo)
            .group("connection")
            .acl(CONN)
            .doc("6.2.0", "Return information about server assisted client side caching for the current connection"),
    ]
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN] [OPTOUT] [NOLOOP]
fn tracking(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut redirect: Option<(u64, usize)> = None;
    let mut options = 0u8;
    let mut prefixes: Vec<&[u8]> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = args[j];
        if eq_ic(a, "redirect") && more {
            j += 1;
            if redirect.is_some() {
                return r.error("ERR A client can only redirect to a single other client");
            }
            let Some(id) = super::parse_i64(args[j]) else {
                return r.error(err::NOT_INTEGER);
            };
            match find_client(ctx, id) {
                Some(shard) => redirect = Some((id as u64, shard)),
                None => return r.error("ERR The client ID you want redirect to does not exist"),
            }
        } else if eq_ic(a, "bcast") {
            options |= flag::BCAST;
        } else if eq_ic(a, "optin") {
            options |= flag::OPTIN;
        } else if eq_ic(a, "optout") {
            options |= flag::OPTOUT;
        } else if eq_ic(a, "noloop") {
            options |= flag::NOLOOP;
        } else if eq_ic(a, "prefix") && more {
            j += 1;
            prefixes.push(args[j]);
        } else {
            return r.error(err::SYNTAX);
        }
        j += 1;
    }
    if eq_ic(args[2], "on") {
        let Some(c) = ctx.client.as_deref() else {
            return r.error(err::SYNTAX);
        };
        let t = &c.tracking;
        if options & flag::BCAST == 0 && !prefixes.is_empty() {
            return r.error("ERR PREFIX option requires BCAST mode to be enabled");
        }
        if t.on() && t.has(flag::BCAST) != (options & flag::BCAST != 0) {
            return r.error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if options & flag::BCAST != 0 && options & (flag::OPTIN | flag::OPTOUT) != 0 {
            return r.error("ERR OPTIN and OPTOUT are not compatible with BCAST");
        }
        if options & flag::OPTIN != 0 && options & flag::OPTOUT != 0 {
            return r.error("ERR You can't specify both OPTIN mode and OPTOUT mode");
        }
        if options & flag::OPTIN != 0 && t.has(flag::OPTOUT) || options & flag::OPTOUT != 0 && t.has(flag::OPTIN) {
            return r.error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if options & flag::BCAST != 0 {
            if let Some((e, enable_anyway)) = prefix_collision(&t.prefixes, &prefixes) {
                r.error_bytes(&e);
                if !enable_anyway {
                    return;
                }
            }
        }
        enable(ctx, redirect.unwrap_or((0, 0)), options, &prefixes);
    } else if eq_ic(args[2], "off") {
        disable(ctx);
    } else {
        return r.error(err::SYNTAX);
    }
    r.ok();
}

/// The shard of live client `id` (every shard is held), if any.
fn find_client(ctx: &Ctx, id: i64) -> Option<usize> {
    let id = u64::try_from(id).ok()?;
    (0..ctx.shard_count).find(|&s| ctx.shards.has(s) && ctx.shard(s).clients.iter().flatten().any(|c| c.id == id && !c.kill_requested))
}

/// Redis's `enableTracking` (every shard held).
fn enable(ctx: &mut Ctx, (redirect, redirect_shard): (u64, usize), options: u8, prefixes: &[&[u8]]) {
    let home = ctx.home;
    let Some(c) = ctx.client.as_deref_mut() else { return };
    let t = &mut c.tracking;
    if !t.on() {
        ctx.server.tracking.clients.fetch_add(1, Ordering::Relaxed);
        t.epoch = t.epoch.wrapping_add(1);
    }
    t.flags = flag::ON | (t.flags & flag::CACHING) | (options & (flag::OPTIN | flag::OPTOUT | flag::NOLOOP));
    t.redirect = redirect;
    t.redirect_shard = redirect_shard;
    c.info_dirty = true;
    if options & flag::BCAST == 0 {
        return;
    }
    t.flags |= flag::BCAST;
    let added: &[&[u8]] = if prefixes.is_empty() { &[b""] } else { prefixes };
    for p in added {
        if let Err(at) = t.prefixes.binary_search_by(|q| q[..].cmp(p)) {
            t.prefixes.insert(at, p.to_vec());
        }
    }
    let reg = BcastClient { id: c.id, shard: home, noloop: t.has(flag::NOLOOP), epoch: t.epoch };
    let all = t.prefixes.clone();
    for s in 0..ctx.shard_count {
        for p in &all {
            ctx.shards.get_mut(s).tracking.register_prefix(p, reg);
        }
    }
}

/// Redis's `disableTracking` (CLIENT TRACKING OFF, RESET): BCAST
/// registrations go from every shard, directly where the shard is held, by
/// message elsewhere; the tables forget the client's id lazily.
pub fn disable(ctx: &mut Ctx) {
    let home = ctx.home;
    let Some(c) = ctx.client.as_deref_mut() else { return };
    let t = &mut c.tracking;
    if !t.on() {
        return;
    }
    let (id, epoch, bcast) = (c.id, t.epoch, t.has(flag::BCAST));
    t.flags = 0;
    t.prefixes = Vec::new();
    c.info_dirty = true;
    ctx.server.tracking.clients.fetch_sub(1, Ordering::Relaxed);
    if !bcast {
        return;
    }
    for s in 0..ctx.shard_count {
        if ctx.shards.has(s) {
            ctx.shards.get_mut(s).tracking.forget(id, epoch);
        } else {
            let msg = TrackingMessage::Forget { client: id, epoch };
            ctx.shards.get_mut(home).tracking.outgoing.push(crate::messaging::tracking::Outgoing { to: s, msg });
        }
    }
}

/// CLIENT CACHING YES|NO: the next command's reads are (OPTIN) or are not
/// (OPTOUT) remembered.
fn caching(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(c) = ctx.client.as_deref_mut() else {
        return r.error(err::SYNTAX);
    };
    let t = &mut c.tracking;
    if !t.on() {
        return r.error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    }
    if eq_ic(args[2], "yes") {
        if !t.has(flag::OPTIN) {
            return r.error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
        }
    } else if eq_ic(args[2], "no") {
        if !t.has(flag::OPTOUT) {
            return r.error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
        }
    } else {
        return r.error(err::SYNTAX);
    }
    t.flags |= flag::CACHING;
    r.ok();
}

fn getredir(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    match ctx.client.as_deref() {
        Some(c) if c.tracking.on() => r.int(c.tracking.redirect as i64),
        _ => r.int(-1),
    }
}

fn trackinginfo(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let t = ctx.client.as_deref().map(|c| c.tracking.clone()).unwrap_or_default();
    let mut flags: Vec<&str> = vec![if t.on() { "on" } else { "off" }];
    if t.has(flag::BCAST) {
        flags.push("bcast");
    }
    if t.has(flag::OPTIN) {
        flags.push("optin");
        if t.has(flag::CACHING) {
            flags.push("caching-yes");
        }
    }
    if t.has(flag::OPTOUT) {
        flags.push("optout");
        if t.has(flag::CACHING) {
            flags.push("caching-no");
        }
    }
    if t.has(flag::NOLOOP) {
        flags.push("noloop");
    }
    if t.has(flag::BROKEN_REDIR) {
        flags.push("broken_redirect");
    }
    r.map(3);
    r.bulk(b"flags");
    r.set(flags.len());
    for f in flags {
        r.bulk(f.as_bytes());
    }
    r.bulk(b"redirect");
    r.int(if t.on() { t.redirect as i64 } else { -1 });
    r.bulk(b"prefixes");
    r.array(t.prefixes.len());
    for p in &t.prefixes {
        r.bulk(p);
    }
}
