//! CLIENT subcommands (Redis's networking.c `clientCommand`).
//!
//! The facts about other connections come from each shard's client registry
//! (`ShardState.clients`), which the owning loop keeps current; CLIENT LIST
//! and KILL hold every shard to read or mark it. A kill is a request: the
//! owning loop closes the connection on its next cron tick.

use std::fmt::Write;

use super::{err, flags::*, CommandSpec, CommandTable, Ctx, ReplyMode, Route};
use crate::protocol::Reply;
use crate::shard::ClientInfo;
use crate::util::{eq_ic, printf_str};

const CLIENT: u32 = NOSCRIPT | LOADING | STALE;
const ADMIN_CLIENT: u32 = ADMIN | CLIENT;
const CONN: &[&str] = &["@slow", "@connection"];
const ADMIN_CONN: &[&str] = &["@admin", "@slow", "@dangerous", "@connection"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("client", -2, 0, container).group("connection").acl(&["@slow"]).doc("2.4.0", "A container for client connection commands"),
        CommandSpec::new("client|id", 2, CLIENT, id).group("connection").acl(CONN).doc("5.0.0", "Returns the client ID for the current connection"),
        CommandSpec::new("client|info", 2, CLIENT, info).group("connection").acl(CONN).doc("6.2.0", "Returns information about the current client connection."),
        CommandSpec::new("client|getname", 2, CLIENT, getname).group("connection").acl(CONN).doc("2.6.9", "Get the current connection name"),
        CommandSpec::new("client|setname", 3, CLIENT, setname).group("connection").acl(CONN).doc("2.6.9", "Set the current connection name"),
        CommandSpec::new("client|list", -2, ADMIN_CLIENT, list)
            .route(Route::All)
            .group("connection")
            .acl(ADMIN_CONN)
            .doc("2.4.0", "Get the list of client connections"),
        CommandSpec::new("client|kill", -3, ADMIN_CLIENT, kill)
            .route(Route::All)
            .group("connection")
            .acl(ADMIN_CONN)
            .doc("2.4.0", "Kill the connection of a client"),
        CommandSpec::new("client|no-evict", 3, ADMIN_CLIENT, no_evict)
            .group("connection")
            .acl(ADMIN_CONN)
            .doc("7.0.0", "Set client eviction mode for the current connection"),
        CommandSpec::new("client|reply", 3, CLIENT, reply).group("connection").acl(CONN).doc("3.2.0", "Instruct the server whether to reply to commands"),
        CommandSpec::new("client|pause", -3, ADMIN_CLIENT, pause)
            .group("connection")
            .acl(ADMIN_CONN)
            .doc("2.9.50", "Stop processing commands from clients for some time"),
        CommandSpec::new("client|unpause", 2, ADMIN_CLIENT, unpause)
            .group("connection")
            .acl(ADMIN_CONN)
            .doc("6.2.0", "Resume processing of clients that were paused"),
        CommandSpec::new("client|unblock", -3, ADMIN_CLIENT, unblock)
            .route(Route::All)
            .group("connection")
            .acl(ADMIN_CONN)
            .doc("5.0.0", "Unblock a client blocked in a blocking command from a different connection"),
        CommandSpec::new("client|help", 2, LOADING | STALE, help)
            .group("connection")
            .acl(CONN)
            .doc("5.0.0", "Show helpful text about the different subcommands"),
    ]
}

/// Never called: dispatch resolves the subcommand or rejects the call.
fn container(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.error(err::SYNTAX);
}

const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// Redis's `addReplyHelp`: one status reply per line.
pub fn reply_help(r: &mut Reply, lines: &[&str]) {
    r.array(lines.len());
    for l in lines {
        r.simple(l);
    }
}

/// Redis's `addReplySubcommandSyntaxError`.
pub fn subcommand_syntax_error(r: &mut Reply, args: &[&[u8]]) {
    let command = printf_str(args[0], usize::MAX).to_ascii_uppercase();
    r.error_parts(&[b"ERR unknown subcommand or wrong number of arguments for '", printf_str(args[1], 128), b"'. Try ", &command, b" HELP."]);
}

fn help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    reply_help(r, HELP);
}

pub const INVALID_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Client names are printable ASCII without spaces (they appear unquoted in CLIENT LIST).
pub fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn id(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.int(ctx.client.as_ref().map_or(0, |c| c.id as i64));
}

fn getname(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    match ctx.client.as_ref() {
        Some(c) if !c.name.is_empty() => r.bulk(&c.name),
        _ => r.null(),
    }
}

fn setname(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if !valid_name(args[2]) {
        r.error(INVALID_NAME);
        return;
    }
    if let Some(c) = ctx.client.as_mut() {
        c.name = args[2].to_vec();
        c.info_dirty = true;
    }
    r.ok();
}

fn on_off(arg: &[u8]) -> Option<bool> {
    if eq_ic(arg, "on") {
        Some(true)
    } else if eq_ic(arg, "off") {
        Some(false)
    } else {
        None
    }
}

fn no_evict(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(on) = on_off(args[2]) else {
        r.error(err::SYNTAX);
        return;
    };
    if let Some(c) = ctx.client.as_mut() {
        c.no_evict = on;
        c.info_dirty = true;
    }
    r.ok();
}

/// CLIENT REPLY: OFF and SKIP are not acknowledged (their own reply is
/// suppressed too); the dispatcher applies the mode.
fn reply(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(c) = ctx.client.as_mut() else {
        r.error(err::SYNTAX);
        return;
    };
    if eq_ic(args[2], "on") {
        c.reply_mode = ReplyMode::On;
        r.ok();
    } else if eq_ic(args[2], "off") {
        c.reply_mode = ReplyMode::Off;
    } else if eq_ic(args[2], "skip") {
        if c.reply_mode != ReplyMode::Off {
            c.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        r.error(err::SYNTAX);
    }
}

/// CLIENT PAUSE timeout [WRITE|ALL]: every shard holds back the commands of
/// normal clients (writes only, or all) until the deadline or CLIENT UNPAUSE;
/// the held connections keep their place and run in order afterwards. Active
/// expiry stops for the duration, as in Redis.
fn pause(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 4 {
        subcommand_syntax_error(r, args);
        return;
    }
    let timeout = match super::parse_i64(args[2]) {
        None => {
            r.error("ERR timeout is not an integer or out of range");
            return;
        }
        Some(t) if t < 0 => {
            r.error("ERR timeout is negative");
            return;
        }
        Some(t) => t,
    };
    let kind = if args.len() == 4 {
        if eq_ic(args[3], "write") {
            crate::server::PAUSE_WRITE
        } else if eq_ic(args[3], "all") {
            crate::server::PAUSE_ALL
        } else {
            r.error("ERR CLIENT PAUSE mode must be WRITE or ALL");
            return;
        }
    } else {
        crate::server::PAUSE_ALL
    };
    ctx.server.pause(ctx.now_ms.saturating_add(timeout), kind, ctx.now_ms);
    r.ok();
}

fn unpause(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    ctx.server.unpause();
    r.ok();
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: every shard is held, the client's
/// entry found on its shard, its waiter claimed there (its loop replies).
fn unblock(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 4 {
        subcommand_syntax_error(r, args);
        return;
    }
    let Some(id) = super::parse_i64(args[2]) else {
        r.error(err::NOT_INTEGER);
        return;
    };
    if args.len() == 4 && !eq_ic(args[3], "timeout") && !eq_ic(args[3], "error") {
        r.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        return;
    }
    let error = args.len() == 4 && eq_ic(args[3], "error");
    let unblocked = (0..ctx.shard_count).find_map(|s| crate::network::blocking::unblock_client(ctx.shard_mut(s), id as u64, error)).unwrap_or(false);
    r.int(unblocked as i64);
}

/// Client types of CLIENT LIST/KILL TYPE. ringkv's clients are all normal
/// (a MONITOR client too, as in Redis); it has no replicas or pubsub yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    PubSub,
    Master,
}

fn parse_type(arg: &[u8]) -> Option<ClientType> {
    match arg.to_ascii_lowercase().as_slice() {
        b"normal" => Some(ClientType::Normal),
        b"slave" | b"replica" => Some(ClientType::Replica),
        b"pubsub" => Some(ClientType::PubSub),
        b"master" => Some(ClientType::Master),
        _ => None,
    }
}

fn client_type(info: &ClientInfo) -> ClientType {
    if info.flags.contains('S') {
        ClientType::Replica
    } else if info.flags.contains('P') || info.subscriptions.iter().any(|&n| n > 0) {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

fn unknown_type(r: &mut Reply, arg: &[u8]) {
    r.error_parts(&[b"ERR Unknown client type '", printf_str(arg, usize::MAX), b"'"]);
}

/// The `flags=` field: Redis's letters in Redis's order, `N` when none.
fn flags_field(info: &ClientInfo, out: &mut String) {
    let start = out.len();
    let on = |letter: char| match letter {
        'O' => info.is_monitor,
        'P' => info.subscriptions.iter().any(|&n| n > 0),
        'x' => info.multi.is_some(),
        'b' => info.blocked.is_some() || info.paused,
        'd' => info.watch.as_ref().is_some_and(|w| w.dirty()),
        'r' => info.readonly,
        'e' => info.no_evict,
        't' | 'R' | 'B' => crate::messaging::tracking::has_list_flag(info.tracking_flags, letter),
        l => info.flags.contains(l),
    };
    // Redis's order (`catClientInfoString`).
    for letter in "OSMPxbtRBdcuAUre".chars() {
        if on(letter) {
            out.push(letter);
        }
    }
    if out.len() == start {
        out.push('N');
    }
}

/// One CLIENT LIST / CLIENT INFO line, as Redis 7.0's `catClientInfoString`,
/// followed by `\n`. `argv_bytes` is the size of the arguments of the command
/// being run (only the caller has one).
pub fn client_line(info: &ClientInfo, now_ms: i64, argv_bytes: usize, out: &mut String) {
    let table = CommandTable::get();
    let cmd = table.specs.get(info.last_cmd as usize).map_or("NULL", |s| s.name);
    let m = &info.mem;
    // The figure client eviction counts (`network::client_memory`).
    let tot_mem = info.memory_bytes(argv_bytes);
    let _ = write!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=",
        info.id,
        info.addr,
        info.laddr,
        info.fd,
        String::from_utf8_lossy(&info.name),
        (now_ms - info.created_ms).max(0) / 1000,
        (now_ms - info.last_interaction_ms).max(0) / 1000,
    );
    flags_field(info, out);
    let _ = writeln!(
        out,
        " db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs=16384 rbp=0 obl=0 oll=0 omem={} tot-mem={} events={} cmd={} user={} redir={} resp={}",
        info.db,
        info.subscriptions[0],
        info.subscriptions[1],
        info.subscriptions[2],
        info.multi.map_or(-1, i64::from),
        m.qbuf(),
        m.qbuf_free(),
        argv_bytes + m.qbuf_args,
        m.multi,
        m.out_pending,
        tot_mem,
        if m.out_pending > 0 { "rw" } else { "r" },
        cmd,
        if info.user.is_empty() { "default".into() } else { String::from_utf8_lossy(&info.user) },
        crate::messaging::tracking::list_redir(info.tracking_flags, info.redir),
        info.resp,
    );
}

/// The caller's registry entry brought up to date with its connection state
/// (the registry is refreshed only after a command that changes it).
/// Kills (as CLIENT KILL: closed by their shards' cron) every connection
/// but `caller_id` that `doomed(shard, index, info)` picks, over the shards
/// the command holds (all of them); returns how many.
pub fn kill_where(ctx: &mut Ctx, caller_id: Option<u64>, doomed: impl Fn(usize, usize, &ClientInfo) -> bool) -> i64 {
    let mut killed = 0i64;
    let mut subscribers = Vec::new();
    for s in 0..ctx.shard_count {
        for (i, slot) in ctx.shard_mut(s).clients.iter_mut().enumerate() {
            let Some(info) = slot.as_mut() else {
                continue;
            };
            if info.kill_requested || Some(info.id) == caller_id || !doomed(s, i, info) {
                continue;
            }
            info.kill_requested = true;
            // A blocked victim is gone now, as Redis frees it in the
            // command: nothing is popped for it before its shard closes it.
            if let Some(w) = &info.blocked {
                w.claim(crate::messaging::blocking::GONE);
            }
            // A subscribed victim too: no longer a receiver once this answers.
            if info.subscriptions.iter().any(|&n| n > 0) {
                subscribers.push(crate::messaging::pubsub::Subscriber { shard: s as u32, token: info.token });
            }
            killed += 1;
        }
    }
    for s in 0..ctx.shard_count {
        for &sub in &subscribers {
            ctx.shard_mut(s).pubsub.remove_subscriber(sub);
        }
    }
    // Counted out now, as Redis's freeClient; the shards' cron closes the
    // connections (and does not count them out again).
    ctx.server.connected_clients.fetch_sub(killed as usize, std::sync::atomic::Ordering::AcqRel);
    killed
}

/// The caller's CLIENT LIST line, without its newline (ACL LOG's `client-info`).
pub fn caller_line(ctx: &Ctx) -> String {
    let mut s = String::new();
    if let Some(info) = caller_info(ctx) {
        client_line(&info, ctx.now_ms, 0, &mut s);
        s.pop();
    }
    s
}

fn caller_info(ctx: &Ctx) -> Option<ClientInfo> {
    let c = ctx.client.as_ref()?;
    let registered = ctx.shard(ctx.home).clients.iter().flatten().find(|i| i.id == c.id).cloned();
    let mut info = registered.unwrap_or_else(|| ClientInfo {
        id: c.id,
        addr: c.addr.clone(),
        laddr: c.laddr.clone(),
        created_ms: c.created_ms,
        last_interaction_ms: ctx.now_ms,
        fd: -1,
        ..Default::default()
    });
    info.name = c.name.clone();
    info.db = c.db;
    info.resp = c.resp;
    info.no_evict = c.no_evict;
    info.is_monitor = c.monitor;
    info.readonly = c.readonly;
    info.subscriptions = [c.pubsub.channels.len(), c.pubsub.patterns.len(), c.pubsub.shard_channels.len()];
    info.tracking_flags = c.tracking.flags;
    info.redir = c.tracking.redirect;
    // Redis trims its query buffer after the commands in it ran: while
    // CLIENT LIST/INFO runs, it still holds the command itself.
    let m = &mut info.mem;
    (m.qbuf_len, m.qbuf_cap, m.qbuf_args) = (c.input_len, c.input_len + c.input_free, 0);
    m.state = crate::network::client_memory::state_bytes(c);
    m.multi = c.multi.queued_bytes();
    info.user = c.acl.user_name().to_vec();
    Some(info)
}

fn argv_bytes(args: &[&[u8]]) -> usize {
    args.iter().map(|a| a.len()).sum()
}

fn info(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut out = String::new();
    if let Some(info) = caller_info(ctx) {
        client_line(&info, ctx.now_ms, argv_bytes(args), &mut out);
    }
    r.verbatim(out.as_bytes());
}

/// CLIENT LIST [TYPE type] [ID id ...]: every shard's clients, by id.
fn list(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut kind = None;
    let mut ids: Option<Vec<i64>> = None;
    if args.len() == 4 && eq_ic(args[2], "type") {
        match parse_type(args[3]) {
            Some(t) => kind = Some(t),
            None => return unknown_type(r, args[3]),
        }
    } else if args.len() > 3 && eq_ic(args[2], "id") {
        let mut v = Vec::with_capacity(args.len() - 3);
        for a in &args[3..] {
            match super::parse_i64(a) {
                Some(n) => v.push(n),
                None => return r.error("ERR Invalid client ID"),
            }
        }
        ids = Some(v);
    } else if args.len() != 2 {
        return r.error(err::SYNTAX);
    }
    let caller = caller_info(ctx);
    let caller_id = caller.as_ref().map(|c| c.id);
    let mut clients: Vec<ClientInfo> = Vec::new();
    for s in 0..ctx.shard_count {
        for info in ctx.shard(s).clients.iter().flatten() {
            if info.kill_requested || Some(info.id) == caller_id {
                continue;
            }
            clients.push(info.clone());
        }
    }
    clients.extend(caller);
    // Replicas live on the replication thread (flag S).
    clients.extend(ctx.server.repl.replicas().iter().map(crate::replication::client_info));
    clients.retain(|c| kind.is_none_or(|k| client_type(c) == k));
    clients.sort_by_key(|c| c.id);
    let mut out = String::with_capacity(clients.len() * 300);
    let mut line = |c: &ClientInfo| {
        let argv = if Some(c.id) == caller_id { argv_bytes(args) } else { 0 };
        client_line(c, ctx.now_ms, argv, &mut out);
    };
    match &ids {
        // As Redis: the clients in the order the IDs were given, one line
        // per ID given (an ID given twice lists its client twice).
        Some(ids) => {
            for &id in ids {
                if let Ok(i) = clients.binary_search_by_key(&id, |c| c.id as i64) {
                    line(&clients[i]);
                }
            }
        }
        None => clients.iter().for_each(line),
    }
    r.verbatim(out.as_bytes());
}

/// Filters of CLIENT KILL's new form.
#[derive(Default)]
struct KillFilter<'a> {
    id: Option<u64>,
    kind: Option<ClientType>,
    addr: Option<&'a [u8]>,
    laddr: Option<&'a [u8]>,
    user: Option<&'a [u8]>,
    skip_me: bool,
}

impl KillFilter<'_> {
    fn matches(&self, info: &ClientInfo) -> bool {
        self.id.is_none_or(|id| info.id == id)
            && self.kind.is_none_or(|k| client_type(info) == k)
            && self.addr.is_none_or(|a| info.addr.as_bytes() == a)
            && self.laddr.is_none_or(|a| info.laddr.as_bytes() == a)
            && self.user.is_none_or(|u| if info.user.is_empty() { u == b"default" } else { info.user == u })
    }
}

/// CLIENT KILL ip:port | CLIENT KILL <filter> <value> ...
fn kill(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let old_form = args.len() == 3;
    let mut f = KillFilter { skip_me: true, ..Default::default() };
    if old_form {
        f.addr = Some(args[2]);
        f.skip_me = false;
    } else if (args.len() - 2).is_multiple_of(2) {
        for pair in args[2..].chunks(2) {
            let (opt, val) = (pair[0], pair[1]);
            if eq_ic(opt, "id") {
                match super::parse_i64(val) {
                    Some(n) if n > 0 => f.id = Some(n as u64),
                    _ => return r.error("ERR client-id should be greater than 0"),
                }
            } else if eq_ic(opt, "type") {
                match parse_type(val) {
                    Some(t) => f.kind = Some(t),
                    None => return unknown_type(r, val),
                }
            } else if eq_ic(opt, "addr") {
                f.addr = Some(val);
            } else if eq_ic(opt, "laddr") {
                f.laddr = Some(val);
            } else if eq_ic(opt, "user") {
                if ctx.server.acl.get(val).is_none() {
                    return r.error_parts(&[b"ERR No such user '", printf_str(val, usize::MAX), b"'"]);
                }
                f.user = Some(val);
            } else if eq_ic(opt, "skipme") {
                if eq_ic(val, "yes") {
                    f.skip_me = true;
                } else if eq_ic(val, "no") {
                    f.skip_me = false;
                } else {
                    return r.error(err::SYNTAX);
                }
            } else {
                return r.error(err::SYNTAX);
            }
        }
    } else {
        return r.error(err::SYNTAX);
    }
    let caller = caller_info(ctx);
    let caller_id = caller.as_ref().map(|c| c.id);
    let mut killed = kill_where(ctx, caller_id, |_, _, info| f.matches(info));
    if let Some(me) = caller {
        if !f.skip_me && f.matches(&me) {
            killed += 1;
            if let Some(c) = ctx.client.as_mut() {
                c.close_after_reply = true;
            }
        }
    }
    if old_form {
        if killed == 0 {
            r.error("ERR No such client");
        } else {
            r.ok();
        }
    } else {
        r.int(killed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name(b"worker-1"));
        assert!(valid_name(b""));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name(b"a\nb"));
        assert!(!valid_name("é".as_bytes()));
    }

    #[test]
    fn line_format() {
        let info = ClientInfo {
            id: 7,
            addr: "127.0.0.1:5000".into(),
            laddr: "127.0.0.1:6379".into(),
            fd: 9,
            name: b"w".to_vec(),
            created_ms: 1000,
            last_interaction_ms: 3000,
            resp: 2,
            last_cmd: ClientInfo::NO_COMMAND,
            no_evict: true,
            ..Default::default()
        };
        let mut s = String::new();
        client_line(&info, 5000, 0, &mut s);
        assert!(s.starts_with("id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=9 name=w age=4 idle=2 flags=e db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 "), "{s}");
        assert!(s.ends_with(" events=r cmd=NULL user=default redir=-1 resp=2\n"), "{s}");
    }
}
