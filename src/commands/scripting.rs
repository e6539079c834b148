//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (Redis 7.0's eval.c
//! commands); the interpreter, the cache and the run are `scripting`.
//!
//! The EVAL family routes to every shard (`Route::All`): a script may touch
//! any key (non-cluster Redis allows undeclared keys), so it holds them all
//! and runs atomically on the caller's thread. Its keys (the `numkeys`
//! count) are still declared for COMMAND GETKEYS.

use super::{flags::*, CommandSpec, Ctx, Route};
use crate::protocol::Reply;
use crate::scripting::{self, Source};

const SCRIPTING: &[&str] = &["@slow", "@scripting"];

fn eval_keys(args: &[&[u8]], out: &mut Vec<usize>) {
    super::numkeys_keys(args, 2, out);
}

pub fn commands() -> Vec<CommandSpec> {
    let eval_flags = NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | RUNS_SCRIPT;
    let ro_flags = NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | RUNS_SCRIPT;
    let family = |name, flags, handler, summary| {
        CommandSpec::new(name, -3, flags, handler)
            .find_keys(eval_keys)
            .route(Route::All)
            .group("scripting")
            .acl(SCRIPTING)
            .doc(if name.ends_with("_ro") { "7.0.0" } else { "2.6.0" }, summary)
    };
    let fn_family = |name, flags, handler, summary| {
        CommandSpec::new(name, -3, flags, handler).find_keys(eval_keys).route(Route::All).group("scripting").acl(SCRIPTING).doc("7.0.0", summary)
    };
    let writes = &["@write", "@slow", "@scripting"];
    vec![
        fn_family("fcall", eval_flags, fcall, "Invoke a function"),
        fn_family("fcall_ro", ro_flags, fcall_ro, "Invoke a read-only function"),
        CommandSpec::new("function", -2, 0, function_help).group("scripting").acl(&["@slow"]).doc("7.0.0", "A container for function commands"),
        CommandSpec::new("function|load", -3, NOSCRIPT | WRITE | DENYOOM, function_load)
            .route(Route::All)
            .group("scripting")
            .acl(writes)
            .doc("7.0.0", "Create a function with the given arguments (name, code, description)"),
        CommandSpec::new("function|delete", 3, NOSCRIPT | WRITE, function_delete)
            .route(Route::All)
            .group("scripting")
            .acl(writes)
            .doc("7.0.0", "Delete a function by name"),
        CommandSpec::new("function|flush", -2, NOSCRIPT | WRITE, function_flush)
            .route(Route::All)
            .group("scripting")
            .acl(writes)
            .doc("7.0.0", "Deleting all functions"),
        CommandSpec::new("function|dump", 2, NOSCRIPT, function_dump)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("7.0.0", "Dump all functions into a serialized binary payload"),
        CommandSpec::new("function|restore", -3, NOSCRIPT | WRITE | DENYOOM, function_restore)
            .route(Route::All)
            .group("scripting")
            .acl(writes)
            .doc("7.0.0", "Restore all the functions on the given payload"),
        CommandSpec::new("function|kill", 2, NOSCRIPT | ALLOW_BUSY, script_kill)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("7.0.0", "Kill the function currently in execution."),
        CommandSpec::new("function|list", -2, NOSCRIPT, function_list)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("7.0.0", "List information about all the functions"),
        CommandSpec::new("function|stats", 2, NOSCRIPT | ALLOW_BUSY, function_stats)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("7.0.0", "Return information about the function currently running (name, description, duration)"),
        CommandSpec::new("function|help", 2, LOADING | STALE, function_help)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("7.0.0", "Show helpful text about the different subcommands"),
        family("eval", eval_flags, eval, "Execute a Lua script server side"),
        family("evalsha", eval_flags, evalsha, "Execute a Lua script server side"),
        family("eval_ro", ro_flags, eval_ro, "Execute a read-only Lua script server side"),
        family("evalsha_ro", ro_flags, evalsha_ro, "Execute a read-only Lua script server side"),
        CommandSpec::new("script", -2, 0, script_help).group("scripting").acl(&["@slow"]).doc("2.6.0", "A container for Lua scripts management commands"),
        CommandSpec::new("script|load", 3, NOSCRIPT | STALE, script_load)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("2.6.0", "Load a Lua script into the scripts cache."),
        CommandSpec::new("script|exists", -3, NOSCRIPT, script_exists)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("2.6.0", "Check existence of scripts in the script cache."),
        CommandSpec::new("script|flush", -2, NOSCRIPT, script_flush)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("2.6.0", "Remove all the scripts from the script cache."),
        CommandSpec::new("script|kill", 2, NOSCRIPT | ALLOW_BUSY, script_kill)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("2.6.0", "Kill the script currently in execution."),
        CommandSpec::new("script|debug", 3, NOSCRIPT, script_debug).group("scripting").acl(SCRIPTING).doc("3.2.0", "Set the debug mode for executed scripts."),
        CommandSpec::new("script|help", 2, LOADING | STALE, script_help)
            .group("scripting")
            .acl(SCRIPTING)
            .doc("5.0.0", "Show helpful text about the different subcommands"),
    ]
}

fn eval(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    scripting::eval(ctx, args, Source::Body(args[1]), false, r)
}

fn evalsha(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    scripting::eval(ctx, args, Source::Sha(args[1]), false, r)
}

fn eval_ro(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    scripting::eval(ctx, args, Source::Body(args[1]), true, r)
}

fn evalsha_ro(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    scripting::eval(ctx, args, Source::Sha(args[1]), true, r)
}

fn script_help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    const HELP: &[&str] = &[
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DEBUG (YES|SYNC|NO)",
        "    Set the debug mode for subsequent scripts executed.",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Prints this help.",
    ];
    super::client::reply_help(r, HELP);
}

fn script_load(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match scripting::load(args[2]) {
        Ok(sha) => r.bulk(sha.as_bytes()),
        Err(e) => r.error(&e),
    }
}

fn script_exists(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    r.array(args.len() - 2);
    for sha in &args[2..] {
        r.int(scripting::exists(sha) as i64);
    }
}

fn script_flush(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 3 || (args.len() == 3 && !args[2].eq_ignore_ascii_case(b"sync") && !args[2].eq_ignore_ascii_case(b"async")) {
        return r.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
    }
    scripting::flush();
    r.ok();
}

/// Runs only while no script is busy (a busy script's SCRIPT KILL is
/// answered by the shards serving -BUSY, `network::script`).
fn script_kill(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match scripting::run::RUN.request_kill(args[0].eq_ignore_ascii_case(b"script")) {
        Ok(()) => r.ok(),
        Err(e) => r.error(e),
    }
}

fn script_debug(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mode = args[2];
    if ctx.client.as_ref().is_some_and(|c| c.multi.active) {
        return r.error("ERR SCRIPT DEBUG must be called outside MULTI");
    }
    if mode.eq_ignore_ascii_case(b"no") {
        r.ok()
    } else if mode.eq_ignore_ascii_case(b"yes") || mode.eq_ignore_ascii_case(b"sync") {
        // A limit: the Lua debugger (ldb) is not provided.
        r.error("ERR SCRIPT DEBUG YES|SYNC is not supported: ringkv has no Lua debugger")
    } else {
        r.error("ERR Use SCRIPT DEBUG YES/SYNC/NO")
    }
}

fn fcall(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    scripting::eval(ctx, args, Source::Function(args[1]), false, r)
}

fn fcall_ro(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    scripting::eval(ctx, args, Source::Function(args[1]), true, r)
}

fn function_help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    const HELP: &[&str] = &[
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
        "HELP",
        "    Prints this help.",
    ];
    super::client::reply_help(r, HELP);
}

/// A FUNCTION command changed the libraries: counted as a write (Redis's
/// `server.dirty++`), so it is propagated (AOF, replicas) and counts for
/// the save points. These commands hold every shard (`Route::All`), so the
/// propagated command sits at a cut, in order with every shard's writes.
fn functions_changed(ctx: &mut Ctx) {
    let home = ctx.home;
    ctx.shard_mut(home).dirty += 1;
}

fn function_load(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (replace, code) = match args.len() {
        3 => (false, args[2]),
        4 if args[2].eq_ignore_ascii_case(b"replace") => (true, args[3]),
        _ => return r.error(&format!("ERR Unknown option given: {}", String::from_utf8_lossy(args[2]))),
    };
    match scripting::function_load(code, replace) {
        Ok(name) => {
            functions_changed(ctx);
            r.bulk(name.as_bytes())
        }
        Err(e) => r.error(&e),
    }
}

fn function_delete(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if scripting::function_delete(args[2]) {
        functions_changed(ctx);
        r.ok()
    } else {
        r.error("ERR Library not found")
    }
}

fn function_flush(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 3 {
        return super::client::subcommand_syntax_error(r, args);
    }
    if args.len() == 3 && !args[2].eq_ignore_ascii_case(b"sync") && !args[2].eq_ignore_ascii_case(b"async") {
        return r.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    scripting::function_flush();
    functions_changed(ctx);
    r.ok();
}

/// FUNCTION DUMP: the libraries as Redis's payload (`persistence::payload`).
fn function_dump(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let compress = ctx.config().rdbcompression;
    r.bulk(&crate::persistence::payload::functions_dump(&scripting::library_codes(), compress));
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE], in Redis's order of
/// checks: arguments, policy, version and checksum, records, then the join.
fn function_restore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 4 {
        return super::client::subcommand_syntax_error(r, args);
    }
    let policy = match args.get(3) {
        None => scripting::RestorePolicy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"append") => scripting::RestorePolicy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"replace") => scripting::RestorePolicy::Replace,
        Some(p) if p.eq_ignore_ascii_case(b"flush") => scripting::RestorePolicy::Flush,
        Some(_) => return r.error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."),
    };
    let codes = match crate::persistence::payload::functions_parse(args[2]) {
        Ok(codes) => codes,
        Err(e) => return r.error(e),
    };
    match scripting::function_restore(&codes, policy) {
        Ok(()) => {
            functions_changed(ctx);
            r.ok()
        }
        Err(e) => r.error(&e),
    }
}

fn function_list(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"withcode") && !with_code {
            with_code = true;
        } else if args[i].eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
            if i + 1 >= args.len() {
                return r.error("ERR library name argument was not given");
            }
            i += 1;
            pattern = Some(args[i]);
        } else {
            return r.error(&format!("ERR Unknown argument {}", String::from_utf8_lossy(args[i])));
        }
        i += 1;
    }
    let libs: Vec<_> =
        scripting::function_list().into_iter().filter(|l| pattern.is_none_or(|p| crate::config::glob_match(p, l.name.as_bytes(), false))).collect();
    r.array(libs.len());
    for lib in &libs {
        r.map(if with_code { 4 } else { 3 });
        r.bulk(b"library_name");
        r.bulk(lib.name.as_bytes());
        r.bulk(b"engine");
        r.bulk(b"LUA");
        r.bulk(b"functions");
        r.array(lib.functions.len());
        for f in &lib.functions {
            let flags = &f.flags;
            r.map(3);
            r.bulk(b"name");
            r.bulk(f.name.as_bytes());
            r.bulk(b"description");
            match &f.description {
                Some(d) => r.bulk(d),
                None => r.null(),
            }
            r.bulk(b"flags");
            let names: Vec<&str> = [
                (flags.no_writes, "no-writes"),
                (flags.allow_oom, "allow-oom"),
                (flags.allow_stale, "allow-stale"),
                (flags.no_cluster, "no-cluster"),
                (flags.allow_cross_slot_keys, "allow-cross-slot-keys"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
            // Status replies, as Redis's functionListReplyFlags.
            r.set(names.len());
            for n in names {
                r.simple(n);
            }
        }
        if with_code {
            r.bulk(b"library_code");
            r.bulk(&lib.code);
        }
    }
}

/// Also answered while a function is busy (`network::script`).
fn function_stats(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    scripting::function_stats(r);
}
