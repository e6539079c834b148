//! Connection commands (PING, ECHO, SELECT, HELLO, AUTH, CLIENT, QUIT, RESET).

use super::{flags::*, CommandSpec, Ctx};
use crate::protocol::Reply;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("ping", -1, FAST | SENTINEL, ping).group("connection").doc("1.0.0", "Ping the server"),
        CommandSpec::new("echo", 2, FAST, echo).group("connection").doc("1.0.0", "Echo the given string"),
        CommandSpec::new("select", 2, LOADING | STALE | FAST, select)
            .group("connection")
            .doc("1.0.0", "Change the selected database for the current connection"),
        CommandSpec::new("quit", -1, ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH, quit).group("connection").doc("1.0.0", "Close the connection"),
    ]
}

fn ping(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match args.len() {
        1 => r.simple("PONG"),
        2 => r.bulk(args[1]),
        _ => r.error("ERR wrong number of arguments for 'ping' command"),
    }
}

fn echo(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    r.bulk(args[1]);
}

fn select(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let databases = ctx.config().databases;
    match super::parse_i64(args[1]) {
        None => r.error(super::err::NOT_INTEGER),
        Some(n) if n < 0 || n as usize >= databases => r.error(super::err::DB_INDEX),
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
