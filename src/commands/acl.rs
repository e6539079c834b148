//! ACL and its subcommands (Redis 7.0's `aclCommand`). The users, the
//! check and the log are in `crate::acl`; these run on the caller's thread
//! (the ACL state is global, not a shard's).

use super::{flags::*, CommandSpec, Ctx, Route};
use crate::acl::{self, Context, Reason};
use crate::protocol::Reply;
use crate::util::{eq_ic, printf_str};

const ADMIN_CATS: &[&str] = &["@admin", "@slow", "@dangerous"];
const SLOW: &[&str] = &["@slow"];
const SUB: u32 = NOSCRIPT | LOADING | STALE;

pub fn commands() -> Vec<CommandSpec> {
    let sub = |name, arity, flags, handler, summary, cats| CommandSpec::new(name, arity, flags, handler).group("server").acl(cats).doc("6.0.0", summary);
    vec![
        CommandSpec::new("acl", -2, 0, container).group("server").acl(SLOW).doc("6.0.0", "A container for Access List Control commands "),
        sub("acl|cat", -2, SUB, cat, "List the ACL categories or the commands inside a category", SLOW),
        sub("acl|deluser", -3, ADMIN | SUB, deluser, "Remove the specified ACL users and the associated rules", ADMIN_CATS).route(Route::All),
        sub("acl|dryrun", -4, ADMIN | SUB, dryrun, "Returns whether the user can execute the given command without executing the command.", ADMIN_CATS)
            .doc("7.0.0", "Returns whether the user can execute the given command without executing the command."),
        sub("acl|genpass", -2, SUB, genpass, "Generate a pseudorandom secure password to use for ACL users", SLOW),
        sub("acl|getuser", 3, ADMIN | SUB, getuser, "Get the rules for a specific ACL user", ADMIN_CATS),
        sub("acl|help", 2, LOADING | STALE, help, "Show helpful text about the different subcommands", SLOW),
        sub("acl|list", 2, ADMIN | SUB, list, "List the current ACL rules in ACL config file format", ADMIN_CATS),
        sub("acl|load", 2, ADMIN | SUB, load, "Reload the ACLs from the configured ACL file", ADMIN_CATS).route(Route::All),
        sub("acl|log", -2, ADMIN | SUB, log, "List latest events denied because of ACLs in place", ADMIN_CATS),
        sub("acl|save", 2, ADMIN | SUB, save, "Save the current ACL rules in the configured ACL file", ADMIN_CATS),
        sub("acl|setuser", -3, ADMIN | SUB, setuser, "Modify or create the rules for a specific ACL user", ADMIN_CATS).route(Route::All),
        sub("acl|users", 2, ADMIN | SUB, users, "List the username of all the configured ACL rules", ADMIN_CATS),
        sub("acl|whoami", 2, SUB, whoami, "Return the name of the user associated to the current connection", SLOW),
    ]
}

fn container(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    r.error(&super::arity_error(&String::from_utf8_lossy(args[0]).to_ascii_lowercase()));
}

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

fn help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    super::client::reply_help(r, HELP);
}

fn setuser(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let name = args[2];
    if acl::has_spaces(name) {
        return r.error("ERR Usernames can't contain spaces or null characters");
    }
    let ops = match acl::merge_selector_args(&args[3..]) {
        Ok(ops) => ops,
        Err(i) => return r.error_parts(&[b"ERR Unmatched parenthesis in acl selector starting at '", printf_str(args[3 + i], usize::MAX), b"'."]),
    };
    match ctx.server.acl.set_user(name, &ops) {
        Ok(()) => {
            kill_revoked_subscribers(ctx, name);
            r.ok()
        }
        Err((op, e)) => r.error_parts(&[b"ERR Error in ACL SETUSER modifier '", printf_str(&op, usize::MAX), b"': ", e.text().as_bytes()]),
    }
}

fn deluser(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args[2..].iter().any(|n| *n == b"default") {
        return r.error("ERR The 'default' user cannot be removed");
    }
    let n = ctx.server.acl.delete(&args[2..]);
    // Every shard is held: their connections of the deleted users go now,
    // as Redis's ACLFreeUserAndKillClients.
    let caller_id = ctx.client.as_ref().map(|c| c.id);
    super::client::kill_where(ctx, caller_id, |_, _, info| !info.user.is_empty() && args[2..].contains(&&info.user[..]));
    // The caller deleted its own user: closed after this reply, as Redis's
    // CLIENT_CLOSE_AFTER_COMMAND (other connections: at their next turn).
    if let Some(c) = ctx.client.as_mut() {
        if c.acl.user.is_some() && args[2..].contains(&c.acl.user_name()) {
            c.close_after_reply = true;
        }
    }
    r.int(n as i64);
}

fn getuser(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(u) = ctx.server.acl.get(args[2]) else {
        // Redis 7.0 answers a null (later versions an error).
        return r.null();
    };
    r.map(6);
    r.bulk(b"flags");
    let flags = u.flag_names();
    r.set(flags.len());
    for f in flags {
        r.bulk(f.as_bytes());
    }
    r.bulk(b"passwords");
    r.array(u.passwords().len());
    for p in u.passwords() {
        r.bulk(p.as_bytes());
    }
    selector_fields(r, &u, 0);
    r.bulk(b"selectors");
    r.array(u.selector_count() - 1);
    for i in 1..u.selector_count() {
        r.map(3);
        selector_fields(r, &u, i);
    }
}

fn selector_fields(r: &mut Reply, u: &acl::User, i: usize) {
    let [commands, keys, channels] = u.selector_fields(i);
    r.bulk(b"commands");
    r.bulk(commands.as_bytes());
    r.bulk(b"keys");
    r.bulk(keys.as_bytes());
    r.bulk(b"channels");
    r.bulk(channels.as_bytes());
}

fn list(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let all = ctx.server.acl.all();
    r.array(all.len());
    for u in all {
        let mut line = b"user ".to_vec();
        line.extend_from_slice(&u.name);
        line.push(b' ');
        line.extend_from_slice(u.describe().as_bytes());
        r.bulk(&line);
    }
}

fn users(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let names = ctx.server.acl.names();
    r.array(names.len());
    for n in names {
        r.bulk(&n);
    }
}

fn whoami(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    match ctx.client.as_ref() {
        Some(c) => r.bulk(c.acl.user_name()),
        None => r.null(),
    }
}

const NO_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn load(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let file = ctx.server.acl.filename.lock().unwrap().clone();
    if file.is_empty() {
        return r.error(NO_FILE);
    }
    let path = acl::resolve(&ctx.config().dir, &file);
    match ctx.server.acl.load_file(&file, &path) {
        None => {
            // Every user but the default one was replaced: their connections go.
            let caller_id = ctx.client.as_ref().map(|c| c.id);
            super::client::kill_where(ctx, caller_id, |_, _, info| !info.user.is_empty() && info.user != b"default");
            if let Some(c) = ctx.client.as_mut().filter(|c| c.acl.user_name() != b"default") {
                c.close_after_reply = true;
            }
            r.ok()
        }
        Some(errors) => r.error(&format!("ERR {}", errors)),
    }
}

fn save(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let file = ctx.server.acl.filename.lock().unwrap().clone();
    if file.is_empty() {
        return r.error(NO_FILE);
    }
    let path = acl::resolve(&ctx.config().dir, &file);
    match ctx.server.acl.save_file(&path) {
        Ok(()) => r.ok(),
        Err(e) => {
            crate::warning!("{}", e);
            r.error("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

fn cat(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let cats = super::command::CATEGORIES;
    if args.len() == 2 {
        r.array(cats.len());
        for c in cats {
            r.bulk(c.as_bytes());
        }
        return;
    }
    if args.len() > 3 {
        return super::client::subcommand_syntax_error(r, args);
    }
    let Some(c) = cats.iter().find(|c| c.as_bytes().eq_ignore_ascii_case(args[2])) else {
        return r.error_parts(&[b"ERR Unknown category '", printf_str(args[2], 128), b"'"]);
    };
    let table = super::CommandTable::get();
    let mut names = Vec::new();
    for id in table.top_level() {
        for c2 in std::iter::once(id).chain(table.subcommands_of(table.specs[id].name)) {
            if super::command::acl_categories(&table.specs[c2]).contains(c) {
                names.push(table.specs[c2].name);
            }
        }
    }
    r.array(names.len());
    for n in names {
        r.bulk(n.as_bytes());
    }
}

fn genpass(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 3 {
        return super::client::subcommand_syntax_error(r, args);
    }
    let mut bits = 256;
    if args.len() == 3 {
        match super::parse_i64(args[2]) {
            Some(n) => bits = n,
            None => return r.error(super::err::NOT_INTEGER),
        }
    }
    if bits <= 0 || bits > 4096 {
        return r.error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
    }
    let chars = ((bits + 3) / 4) as usize;
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    crate::util::random_bytes(&mut bytes);
    let mut hex = String::with_capacity(chars + 1);
    for b in bytes {
        hex.push(char::from_digit((b >> 4) as u32, 16).unwrap());
        hex.push(char::from_digit((b & 15) as u32, 16).unwrap());
    }
    hex.truncate(chars);
    r.bulk(hex.as_bytes());
}

fn log(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 3 {
        return super::client::subcommand_syntax_error(r, args);
    }
    let mut count: i64 = 10;
    if args.len() == 3 {
        if eq_ic(args[2], "reset") {
            ctx.server.acl.log_reset();
            return r.ok();
        }
        match super::parse_i64(args[2]) {
            Some(n) => count = n.max(0),
            None => return r.error(super::err::NOT_INTEGER),
        }
    }
    let now = crate::util::unix_ms();
    ctx.server.acl.with_log(|log| {
        let n = (count as usize).min(log.len());
        r.array(n);
        for e in log.iter().take(n) {
            r.map(7);
            r.bulk(b"count");
            r.int(e.count as i64);
            r.bulk(b"reason");
            r.bulk(match e.reason {
                Reason::Command => b"command",
                Reason::Key => b"key",
                Reason::Channel => b"channel",
                Reason::Auth => b"auth",
            });
            r.bulk(b"context");
            r.bulk(match e.context {
                Context::Toplevel => &b"toplevel"[..],
                Context::Multi => b"multi",
                Context::Lua => b"lua",
            });
            r.bulk(b"object");
            r.bulk(&e.object);
            r.bulk(b"username");
            r.bulk(&e.username);
            r.bulk(b"age-seconds");
            r.double((now - e.ctime_ms) as f64 / 1000.0);
            r.bulk(b"client-info");
            r.bulk(e.client_info.as_bytes());
        }
    });
}

fn dryrun(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(u) = ctx.server.acl.get(args[2]) else {
        return r.error_parts(&[b"ERR User '", printf_str(args[2], usize::MAX), b"' not found"]);
    };
    let table = super::CommandTable::get();
    let cmd = &args[3..];
    let mut id = table.lookup(cmd[0]);
    if let Some(i) = id.filter(|&i| table.is_container(i)) {
        id = cmd.get(1).and_then(|s| table.lookup_sub(table.specs[i].name, s));
    }
    let Some(id) = id else {
        return r.error_parts(&[b"ERR Command '", printf_str(cmd[0], usize::MAX), b"' not found"]);
    };
    let spec = &table.specs[id];
    let argc = cmd.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        return r.error(&super::arity_error(spec.name));
    }
    match u.check(id, cmd) {
        Ok(()) => r.ok(),
        Err(acl::Denied::Command) => r.bulk(format!("This user has no permissions to run the '{}' command", table.specs[id].name).as_bytes()),
        Err(acl::Denied::Key(p)) => r.bulk(&[b"This user has no permissions to access the '", cmd[p], b"' key"].concat()),
        Err(acl::Denied::Channel(p)) => r.bulk(&[b"This user has no permissions to access the '", cmd[p], b"' channel"].concat()),
    }
}

/// Logs an ACL denial of the client running `ctx`'s command.
pub fn log_denied(ctx: &Ctx, reason: Reason, context: Context, object: &[u8], username: &[u8]) {
    let info = super::client::caller_line(ctx);
    ctx.server.acl.log(reason, context, object, username, info, crate::util::unix_ms());
}

/// After ACL SETUSER `name` (every shard held): the connections of that
/// user subscribed to a channel, shard channel or pattern it may no longer
/// use are killed (Redis's ACLKillPubsubClientsIfNeeded).
fn kill_revoked_subscribers(ctx: &mut Ctx, name: &[u8]) {
    let Some(user) = ctx.server.acl.get(name) else { return };
    if user.all_channels() {
        return;
    }
    let mut doomed: Vec<(usize, usize)> = Vec::new();
    for s in 0..ctx.shard_count {
        let ps = &ctx.shard(s).pubsub;
        let tables = [(&ps.channels, false), (&ps.shard_channels, false)];
        for (table, literal) in tables {
            for (ch, subs) in table.iter() {
                if !user.channel_allowed(ch, literal) {
                    doomed.extend(subs.iter().map(|x| (x.shard as usize, x.token.index as usize)));
                }
            }
        }
        for (p, subs) in ps.patterns.iter() {
            if !user.channel_allowed(p, true) {
                doomed.extend(subs.iter().map(|x| (x.shard as usize, x.token.index as usize)));
            }
        }
    }
    if doomed.is_empty() {
        return;
    }
    let caller_id = ctx.client.as_ref().map(|c| c.id);
    super::client::kill_where(ctx, caller_id, |s, i, info| info.user == name && doomed.contains(&(s, i)));
}
