//! CONFIG GET/SET/RESETSTAT/REWRITE/HELP over the config table.
//!
//! Every shard keeps its own copy of `Config` so that reading it needs no
//! synchronisation; CONFIG SET holds every shard (Route::All) and replaces
//! all copies at once, which makes a multi-pair SET atomic as in Redis 7.0.

use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::config::table::{self, Def, Kind, IMMUTABLE, MULTI_ARG, PROTECTED};
use crate::config::Config;
use crate::protocol::Reply;

const ACL_ADMIN: &[&str] = &["admin", "slow", "dangerous"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("config", -2, 0, help).group("server").doc("2.0.0", "A container for server configuration commands").acl(&["slow"]),
        CommandSpec::new("config|help", 2, LOADING | STALE, help)
            .group("server")
            .doc("5.0.0", "Show helpful text about the different subcommands")
            .acl(&["slow"]),
        CommandSpec::new("config|rewrite", 2, ADMIN | NOSCRIPT | LOADING | STALE, rewrite)
            .group("server")
            .doc("2.8.0", "Rewrite the configuration file with the in memory configuration")
            .acl(ACL_ADMIN),
        CommandSpec::new("config|get", -3, ADMIN | NOSCRIPT | LOADING | STALE, get)
            .group("server")
            .doc("2.0.0", "Get the values of configuration parameters")
            .acl(ACL_ADMIN),
        CommandSpec::new("config|set", -4, ADMIN | NOSCRIPT | LOADING | STALE, set)
            .route(Route::All)
            .group("server")
            .doc("2.0.0", "Set configuration parameters to the given values")
            .acl(ACL_ADMIN),
        CommandSpec::new("config|resetstat", 2, ADMIN | NOSCRIPT | LOADING | STALE, resetstat)
            .route(Route::All)
            .group("server")
            .doc("2.0.0", "Reset the stats returned by INFO")
            .acl(ACL_ADMIN),
    ]
}

/// Redis's addReplyHelp: a header naming the command, the lines, then HELP's own.
pub fn help_reply(r: &mut Reply, command: &str, lines: &[&str]) {
    r.array(lines.len() + 3);
    r.simple(&format!("{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", command.to_ascii_uppercase()));
    for l in lines {
        r.simple(l);
    }
    r.simple("HELP");
    r.simple("    Prints this help.");
}

fn help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    help_reply(
        r,
        "config",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
}

fn get(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let config = ctx.config();
    let mut found = vec![];
    for pattern in &args[2..] {
        table::get_matching_into(config, &String::from_utf8_lossy(pattern), &mut found);
    }
    r.map(found.len());
    for (k, v) in &found {
        r.bulk(k.as_bytes());
        r.bulk(v.as_bytes());
    }
}

/// Whether `enable-protected-configs` lets this client set protected configs.
fn protected_allowed(ctx: &Ctx) -> bool {
    match ctx.config().others.get("enable-protected-configs").map(|s| s.as_str()) {
        Some("yes") => true,
        Some("local") => ctx
            .client
            .as_ref()
            .is_some_and(|c| c.addr.starts_with("127.") || c.addr.starts_with("[::1]") || c.addr.starts_with("::1") || c.addr.starts_with('/')),
        _ => false,
    }
}

fn set(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() % 2 == 1 {
        r.error(err::SYNTAX);
        return;
    }
    // First pass, as configSetCommand: the first unknown name wins over any
    // other error; then immutable/protected/duplicate, naming the argument as given.
    // Names are kept as the client sent them: the errors quote their bytes.
    let mut unknown: Option<&[u8]> = None;
    let mut refused: Option<(&[u8], &str)> = None;
    let mut chosen: Vec<(&'static Def, &'static str, String)> = vec![];
    for pair in args[2..].chunks(2) {
        let name = pair[0];
        // A name that is not UTF-8 names no parameter.
        let Some((def, registered)) = std::str::from_utf8(name).ok().and_then(table::lookup) else {
            if unknown.is_none() {
                unknown = Some(name);
            }
            continue;
        };
        if unknown.is_some() || refused.is_some() {
            continue;
        }
        if def.flags & IMMUTABLE != 0 {
            refused = Some((name, "can't set immutable config"));
        } else if def.flags & PROTECTED != 0 && !protected_allowed(ctx) {
            refused = Some((name, "can't set protected config"));
        } else if chosen.iter().any(|(d, _, _)| std::ptr::eq(*d, def)) {
            refused = Some((name, "duplicate parameter"));
        } else {
            chosen.push((def, registered, String::from_utf8_lossy(pair[1]).into_owned()));
        }
    }
    if let Some(name) = unknown {
        r.error_parts(&[b"ERR Unknown option or number of arguments for CONFIG SET - '", crate::util::printf_str(name, usize::MAX), b"'"]);
        return;
    }
    if let Some((name, why)) = refused {
        r.error_parts(&[b"ERR CONFIG SET failed (possibly related to argument '", crate::util::printf_str(name, usize::MAX), b"') - ", why.as_bytes()]);
        return;
    }
    // During start-up loading the shards hold an empty keyspace that the
    // loaded one replaces: starting the AOF now would write a base of it.
    if chosen.iter().any(|(d, _, _)| d.name == "appendonly") && ctx.server.loading.load(std::sync::atomic::Ordering::Relaxed) {
        return r.error(super::err::LOADING);
    }
    // Set everything on a copy; the shards' configs change only if all succeed.
    let old = ctx.config();
    let mut new = old.clone();
    for (def, registered, value) in &chosen {
        let words: Vec<&str> = if def.flags & MULTI_ARG != 0 { value.split(' ').collect() } else { vec![value.as_str()] };
        if let Err(e) = table::set(&mut new, def, &words, false) {
            r.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", registered, e));
            return;
        }
    }
    // What Redis's apply functions do, where ringkv can do it.
    for (def, registered, _) in &chosen {
        let failure = match def.name {
            // The listeners are bound once at start; another port or address is refused.
            "port" if new.port != old.port => Some("Unable to listen on this port. Check server logs."),
            "bind" if new.bind != old.bind => Some("Failed to bind to specified addresses."),
            _ => None,
        };
        if let Some(e) = failure {
            r.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", registered, e));
            return;
        }
    }
    // oom-score-adj(-values): Redis's updateOOMScoreAdj, applied before the
    // rest so that a refused score leaves the configuration as it was (the
    // score put back as the old one says).
    if chosen.iter().any(|(d, _, _)| d.name == "oom-score-adj" || d.name == "oom-score-adj-values") {
        use crate::config::oom_score_adj::{self as oom, ProcessClass};
        let class = ProcessClass::of_server(ctx.server.repl.is_replica());
        if oom::apply(&new, class).is_err() {
            let _ = oom::apply(old, class);
            let (_, registered, _) = chosen.iter().find(|(d, _, _)| d.name.starts_with("oom-score-adj")).expect("one is chosen");
            r.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", registered, oom::SET_FAILED));
            return;
        }
    }
    let loglevel_changed = new.loglevel != old.loglevel;
    // appendonly: Redis's updateAppendonly (start or stop the AOF as its
    // state, not the old value, says); appendfsync and
    // no-appendfsync-on-rewrite reach the writer at once.
    if let Some((_, registered, _)) = chosen.iter().find(|(d, _, _)| d.name == "appendonly") {
        use crate::persistence::aof_rewrite::{self, AofState};
        let state = aof_rewrite::lock(&ctx.server.aof_rewrite).state;
        let on = crate::persistence::aof_file::enabled(&new);
        if !on && state != AofState::Off {
            aof_rewrite::stop_append_only(ctx.server, ctx.shards, &new);
        } else if on && state == AofState::Off {
            if let Err(e) = aof_rewrite::start_append_only(ctx.server, ctx.shards, &new, ctx.in_multi) {
                r.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", registered, e));
                return;
            }
        }
    }
    crate::persistence::aof_rewrite::apply_config(ctx.server, &new);
    ctx.server.maxclients.store(new.maxclients, std::sync::atomic::Ordering::Relaxed);
    ctx.server.persistence.update_write_gate(&new);
    ctx.server.memory.apply_config(&new);
    ctx.server.client_memory.apply_config(&new);
    ctx.server.repl.apply_config(&new);
    if chosen.iter().any(|(d, _, _)| d.name == "maxmemory") {
        ctx.server.memory.warn_if_below_usage();
    }
    for i in 0..ctx.shard_count {
        ctx.server.memory.publish(i, ctx.shard(i));
    }
    if loglevel_changed {
        crate::log::set_level(new.loglevel);
    }
    crate::acl::apply_config(&ctx.server.acl, &new, chosen.iter().any(|(d, _, _)| d.name == "requirepass"));
    crate::util::apply_jemalloc_bg_thread(&new);
    crate::shard::lazyfree::apply_config(&new);
    let timestamps = new.others.get("aof-timestamp-enabled").is_some_and(|v| v == "yes");
    for i in 0..ctx.shard_count {
        let st = ctx.shard_mut(i);
        st.config = new.clone();
        // The next command's feed writes its `#TS:` (as the cron would later).
        if st.stream.is_on() {
            st.stream.set_timestamps(timestamps);
        }
    }
    // Redis applies a lower `tracking-table-max-keys` before the next
    // command of any client (`trackingLimitUsedSlots` in processCommand).
    // Left to the shards' turns, a shard that sleeps through this command
    // (held without waking) would evict at its next wake-up or cron, after
    // a tracking client's next reply; evicted here, on every shard held,
    // the invalidations leave before this reply.
    if chosen.iter().any(|(d, _, _)| d.name == "tracking-table-max-keys") {
        crate::messaging::tracking::enforce_limit_held(ctx, new.tracking_table_max_keys);
    }
    // Redis's applyClientMaxMemoryUsage: clients over a new limit are
    // evicted before the reply (the next CLIENT LIST misses them).
    if chosen.iter().any(|(d, _, _)| d.name == "maxmemory-clients" || d.name == "maxmemory") {
        crate::network::client_memory::evict_held(ctx, ctx.server.client_memory.limit());
    }
    r.ok();
}

fn resetstat(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    for i in 0..ctx.shard_count {
        ctx.shard_mut(i).stats.reset();
        ctx.shard_mut(i).snapshot_latency = Default::default();
        // Redis's lazyfreeResetStats: lazyfreed_objects restarts at 0.
        ctx.shard_mut(i).lazyfree.freed_objects = 0;
        ctx.shard_mut(i).eviction.evicted_keys = 0;
    }
    ctx.server.persistence.reset_stats();
    ctx.server.memory.reset_stats();
    ctx.server.client_memory.evicted_clients.store(0, std::sync::atomic::Ordering::Relaxed);
    r.ok();
}

fn rewrite(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let config = ctx.config();
    let Some(path) = config.config_file.clone() else {
        r.error("ERR The server is running without a config file");
        return;
    };
    match rewrite_file(config, &path, false) {
        Ok(()) => {
            crate::warning!("CONFIG REWRITE executed with success.");
            r.ok();
        }
        Err(e) => {
            crate::warning!("CONFIG REWRITE failed: {}", e);
            r.error(&format!("ERR Rewriting config file: {}", e));
        }
    }
}

/// Redis's rewriteConfigFormatMemory: 1gb, 100mb, 10kb or plain bytes.
fn format_memory(bytes: u64) -> String {
    const GB: u64 = 1 << 30;
    const MB: u64 = 1 << 20;
    const KB: u64 = 1 << 10;
    if bytes != 0 && bytes.is_multiple_of(GB) {
        format!("{}gb", bytes / GB)
    } else if bytes != 0 && bytes.is_multiple_of(MB) {
        format!("{}mb", bytes / MB)
    } else if bytes != 0 && bytes.is_multiple_of(KB) {
        format!("{}kb", bytes / KB)
    } else {
        bytes.to_string()
    }
}

/// Redis's sdscatrepr quoting, used for string options.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for &c in s.as_bytes() {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c as char),
            c => out.push_str(&format!("\\x{:02x}", c)),
        }
    }
    out.push('"');
    out
}

/// The lines CONFIG REWRITE writes for `def`, and whether they must be written
/// even if the file did not mention the option (the value is not the default).
fn rewrite_lines(c: &Config, def: &Def) -> (Vec<String>, bool) {
    let value = table::get(c, def);
    let force = value != def.default;
    let name = def.name;
    let lines = match (name, def.kind) {
        // Always written, every point (Redis's `rewriteConfigSaveOption`):
        // a file without its own save lines must not fall back on the
        // defaults, and the defaults' second and third points must not be
        // dropped for being default.
        ("save", _) => {
            let lines = if c.save.is_empty() { vec!["save \"\"".to_string()] } else { c.save.iter().map(|(s, n)| format!("save {} {}", s, n)).collect() };
            return (lines, true);
        }
        ("client-output-buffer-limit", _) => [
            ("normal", &c.client_output_buffer_limit_normal),
            ("replica", &c.client_output_buffer_limit_replica),
            ("pubsub", &c.client_output_buffer_limit_pubsub),
        ]
        .iter()
        .map(|(class, l)| format!("{} {} {} {} {}", name, class, format_memory(l.hard_bytes), format_memory(l.soft_bytes), l.soft_seconds))
        .collect(),
        ("dir", _) => return (vec![format!("dir {}", quote(&value))], true),
        ("bind", _) => vec![format!("bind {}", if value.is_empty() { "\"\"".to_string() } else { value.clone() })],
        ("replicaof", _) => {
            if value.is_empty() {
                return (vec![], false);
            }
            vec![format!("replicaof {}", value)]
        }
        ("notify-keyspace-events", _) | ("latency-tracking-info-percentiles", _) => {
            vec![format!("{} {}", name, quote(&value))]
        }
        (_, Kind::Mem(..)) => vec![format!("{} {}", name, format_memory(value.parse().unwrap_or(0)))],
        (_, Kind::MemPercent(..)) if !value.ends_with('%') => vec![format!("{} {}", name, format_memory(value.parse().unwrap_or(0)))],
        (_, Kind::Str | Kind::Filename(_) | Kind::Dirname(_)) => {
            vec![format!("{} {}", name, quote(&value))]
        }
        _ => vec![format!("{} {}", name, value)],
    };
    (lines, force)
}

/// `DEBUG CONFIG-REWRITE-FORCE-ALL`: CONFIG REWRITE that writes every option,
/// defaults included (Redis's `rewriteConfig(file, force_write=1)`), so a
/// restart proves each value the server shows is one its loader reads back.
pub fn rewrite_force_all(c: &Config) -> Result<(), String> {
    let Some(path) = c.config_file.as_deref() else {
        return Err("The server is running without a config file".into());
    };
    rewrite_file(c, path, true)
}

/// CONFIG REWRITE as Redis does it: keep the file's comments and unknown lines,
/// reuse the lines of each option in place, append options whose value is not
/// the default (every option with `force_all`) after a signature comment,
/// blank the leftover lines.
fn rewrite_file(c: &Config, path: &str, force_all: bool) -> Result<(), String> {
    const SIGNATURE: &str = "# Generated by CONFIG REWRITE";
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(strerror(&e)),
    };
    let mut lines: Vec<String> = vec![];
    let mut option_lines: std::collections::HashMap<String, std::collections::VecDeque<usize>> = Default::default();
    let mut needs_signature = true;
    for raw in old.split('\n') {
        let line = raw.trim_matches([' ', '\t', '\r', '\n']).to_string();
        if line.is_empty() || line.starts_with('#') {
            if line == SIGNATURE {
                needs_signature = false;
            }
            lines.push(line);
            continue;
        }
        let words = crate::config::split_config_line(&line);
        let def = words.as_ref().and_then(|w| w.first()).and_then(|n| table::lookup(n));
        match def {
            Some((def, _)) => {
                option_lines.entry(def.name.to_string()).or_default().push_back(lines.len());
                lines.push(line);
            }
            None if words.as_ref().is_some_and(|w| {
                w.first().is_some_and(|n| matches!(n.to_ascii_lowercase().as_str(), "include" | "rename-command" | "user" | "loadmodule"))
            }) =>
            {
                lines.push(line)
            }
            None => lines.push(format!("# ??? {}", line)),
        }
    }
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for def in table::DEFS {
        let (new_lines, force) = rewrite_lines(c, def);
        let force = force || force_all;
        let slots = option_lines.entry(def.name.to_string()).or_default();
        for l in new_lines {
            if let Some(i) = slots.pop_front() {
                lines[i] = l;
            } else if force {
                if needs_signature {
                    lines.push(SIGNATURE.to_string());
                    needs_signature = false;
                }
                lines.push(l);
            }
        }
        // Leftover lines of a rewritten option (an old second `save` line...) are blanked.
        while let Some(i) = slots.pop_front() {
            lines[i].clear();
        }
    }
    let mut content = String::new();
    let mut was_empty = false;
    for l in &lines {
        if l.is_empty() {
            if was_empty {
                continue;
            }
            was_empty = true;
        } else {
            was_empty = false;
        }
        content.push_str(l);
        content.push('\n');
    }
    let tmp = format!("{}.tmp-{}", path, std::process::id());
    std::fs::write(&tmp, content.as_bytes()).map_err(|e| strerror(&e))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(strerror(&e));
    }
    Ok(())
}

fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_comments_and_replaces_in_place() {
        let d = std::env::temp_dir().join(format!("ringkv-rewrite-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("r.conf");
        std::fs::write(&p, "# top\nport 7000\nsave 900 1\nsave 300 10\nslave-read-only yes\n").unwrap();
        let mut c = Config::from_args(&[p.display().to_string()]).unwrap();
        table::set(&mut c, table::lookup("maxmemory").unwrap().0, &["1gb"], false).unwrap();
        table::set(&mut c, table::lookup("save").unwrap().0, &["60", "5"], false).unwrap();
        rewrite_file(&c, p.to_str().unwrap(), false).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# top\nport 7000\nsave 60 5\n\nreplica-read-only yes\n"), "{}", text);
        assert!(text.contains("# Generated by CONFIG REWRITE\n"));
        assert!(text.contains("\nmaxmemory 1gb\n"));
        assert!(text.contains("\ndir \""));
        // The rewritten file loads back to the same values.
        let again = Config::from_args(&[p.display().to_string()]).unwrap();
        assert_eq!(again.save, vec![(60, 5)]);
        assert_eq!(again.others["maxmemory"], "1073741824");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// DEBUG CONFIG-REWRITE-FORCE-ALL (unit/introspection's "CONFIG REWRITE
    /// sanity"): every option is written, defaults too, and the file loads
    /// back to the value CONFIG GET showed for each.
    #[test]
    fn rewrite_force_all_writes_every_option_and_loads_back() {
        let d = std::env::temp_dir().join(format!("ringkv-rewrite-all-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("r.conf");
        std::fs::write(&p, "port 7000\nsave 900 1\n").unwrap();
        let c = Config::from_args(&[p.display().to_string()]).unwrap();
        rewrite_force_all(&c).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\nhz 10\n") && text.contains("\nmaxmemory-policy noeviction\n"), "{}", text);
        let again = Config::from_args(&[p.display().to_string()]).unwrap();
        for def in table::DEFS {
            assert_eq!(table::get(&again, def), table::get(&c, def), "{}", def.name);
        }
        std::fs::remove_dir_all(&d).unwrap();
        let no_file = Config::from_args(&[]).unwrap();
        assert_eq!(rewrite_force_all(&no_file).unwrap_err(), "The server is running without a config file");
    }
}
