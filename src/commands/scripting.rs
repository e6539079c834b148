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
    vec![
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
fn script_kill(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    match scripting::run::RUN.request_kill() {
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
