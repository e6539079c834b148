//! Connection commands (PING, ECHO, SELECT, QUIT, RESET, HELLO, AUTH), as
//! Redis's server.c / networking.c / acl.c. CLIENT is in `client.rs`.

use super::{err, flags::*, CommandSpec, Ctx, ReplyMode};
use crate::protocol::Reply;
use crate::util::eq_ic;

/// The version every reply that names one reports (HELLO, INFO, LOLWUT).
pub const REDIS_VERSION: &str = "7.0.15";

const CONN: &[&str] = &["@fast", "@connection"];
const SESSION: u32 = NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("ping", -1, FAST, ping).group("connection").acl(CONN).doc("1.0.0", "Ping the server"),
        CommandSpec::new("echo", 2, LOADING | STALE | FAST, echo).group("connection").acl(CONN).doc("1.0.0", "Echo the given string"),
        CommandSpec::new("select", 2, LOADING | STALE | FAST, select)
            .group("connection")
            .acl(CONN)
            .doc("1.0.0", "Change the selected database for the current connection"),
        CommandSpec::new("quit", -1, SESSION, quit).group("connection").acl(CONN).doc("1.0.0", "Close the connection"),
        CommandSpec::new("reset", 1, SESSION, reset)
            .route(super::Route::Client(super::pubsub::reset_route))
            .group("connection")
            .acl(CONN)
            .doc("6.2.0", "Reset the connection"),
        CommandSpec::new("hello", -1, SESSION, hello).group("connection").acl(CONN).doc("6.0.0", "Handshake with Redis"),
        CommandSpec::new("auth", -2, SESSION, auth).group("connection").acl(CONN).doc("1.0.0", "Authenticate to the server"),
    ]
}

fn ping(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() <= 2 && super::pubsub::wants_subscribed_ping(ctx.client.as_deref()) {
        return super::pubsub::subscribed_ping(r, args);
    }
    match args.len() {
        1 => r.simple("PONG"),
        2 => r.bulk(args[1]),
        _ => r.error(&super::arity_error("ping")),
    }
}

fn echo(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    r.bulk(args[1]);
}

fn select(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let databases = ctx.config().databases;
    match super::parse_i64(args[1]) {
        None => r.error(err::NOT_INTEGER),
        Some(n) if n < 0 || n as usize >= databases => r.error(err::DB_INDEX),
        Some(n) => {
            if let Some(c) = ctx.client.as_mut() {
                c.db = n as usize;
                c.info_dirty = true;
            }
            r.ok();
        }
    }
}

fn quit(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    if let Some(c) = ctx.client.as_mut() {
        c.close_after_reply = true;
    }
    r.ok();
}

/// RESET: the connection as it was right after accept (Redis's
/// `clearClientConnectionState`), except that the id is kept.
fn reset(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let needs_auth = ctx.server.acl.auth_required();
    super::multi::discard_transaction(ctx);
    // The subscriptions' owner shards are held (`pubsub::reset_route`).
    super::pubsub::unsubscribe_all_silently(ctx);
    super::tracking::disable(ctx);
    if let Some(c) = ctx.client.as_mut() {
        if c.monitor {
            c.monitor = false;
            crate::exec::gates::add_usize(&ctx.server.monitors, -1, crate::exec::gates::Reason::Monitor);
        }
        c.db = 0;
        c.resp = 2;
        c.name.clear();
        c.authenticated = !needs_auth;
        c.acl = Default::default();
        c.reply_mode = ReplyMode::On;
        c.no_evict = false;
        c.readonly = false;
        c.info_dirty = true;
    }
    r.simple("RESET");
}

/// Authenticates the caller as `user` (`ACLAuthenticateUser`): on a wrong
/// pair or a disabled user, an ACL LOG entry (reason `auth`).
fn authenticate(ctx: &mut Ctx, args: &[&[u8]], user: &[u8], pass: &[u8]) -> bool {
    let ok = match ctx.client.as_mut() {
        Some(c) => ctx.server.acl.authenticate(&mut c.acl, user, pass),
        None => false,
    };
    if ok {
        if let Some(c) = ctx.client.as_mut() {
            c.authenticated = true;
            c.info_dirty = true;
        }
    } else {
        let context = if ctx.in_multi { crate::acl::Context::Multi } else { crate::acl::Context::Toplevel };
        super::acl::log_denied(ctx, crate::acl::Reason::Auth, context, args[0], user);
    }
    ok
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn auth(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 3 {
        r.error(err::SYNTAX);
        return;
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 2 {
        if ctx.server.acl.get(b"default").is_none_or(|d| d.nopass()) {
            r.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            return;
        }
        (b"default", args[1])
    } else {
        (args[1], args[2])
    };
    if authenticate(ctx, args, user, pass) {
        r.ok();
    } else {
        r.error(WRONGPASS);
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]].
fn hello(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut version = None;
    if args.len() >= 2 {
        match super::parse_i64(args[1]) {
            None => {
                r.error("ERR Protocol version is not an integer or out of range");
                return;
            }
            Some(v) if !(2..=3).contains(&v) => {
                r.error("NOPROTO unsupported protocol version");
                return;
            }
            Some(v) => version = Some(v as u8),
        }
    }
    let mut credentials = None;
    let mut name = None;
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ic(args[j], "auth") && more >= 2 {
            credentials = Some((args[j + 1], args[j + 2]));
            j += 3;
        } else if eq_ic(args[j], "setname") && more >= 1 {
            name = Some(args[j + 1]);
            j += 2;
        } else {
            r.error_parts(&[b"ERR Syntax error in HELLO option '", crate::util::printf_str(args[j], usize::MAX), b"'"]);
            return;
        }
    }
    let authenticated = ctx.client.as_ref().is_none_or(|c| c.authenticated);
    if !authenticated && credentials.is_none() {
        r.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    if let Some((user, pass)) = credentials {
        if !authenticate(ctx, args, user, pass) {
            r.error(WRONGPASS);
            return;
        }
    }
    if let Some(n) = name {
        if !super::client::valid_name(n) {
            r.error(super::client::INVALID_NAME);
            return;
        }
    }
    let Some(c) = ctx.client.as_mut() else {
        r.error("ERR HELLO needs a connection");
        return;
    };
    if let Some(n) = name {
        c.name = n.to_vec();
    }
    if let Some(v) = version {
        c.resp = v;
        // The reply below already speaks the new protocol, as in Redis.
        r.resp = v;
    }
    c.info_dirty = true;
    r.map(7);
    r.bulk(b"server");
    r.bulk(b"redis");
    r.bulk(b"version");
    r.bulk(REDIS_VERSION.as_bytes());
    r.bulk(b"proto");
    r.int(c.resp as i64);
    r.bulk(b"id");
    r.int(c.id as i64);
    r.bulk(b"mode");
    r.bulk(b"standalone");
    r.bulk(b"role");
    r.bulk(b"master");
    r.bulk(b"modules");
    r.array(0);
}
