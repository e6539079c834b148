//! COMMAND (COUNT INFO DOCS LIST GETKEYS GETKEYSANDFLAGS HELP), built from the
//! command table, in Redis 7.0's reply layout so that redis-cli and client
//! libraries accept it.

use super::{flags, flags::*, key_positions, CommandSpec, CommandTable, Ctx};
use crate::protocol::Reply;

const ACL_CONNECTION: &[&str] = &["slow", "connection"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("command", -1, LOADING | STALE, all).group("server").doc("2.8.13", "Get array of Redis command details").acl(ACL_CONNECTION),
        CommandSpec::new("command|count", 2, LOADING | STALE, count).group("server").doc("2.8.13", "Get total number of Redis commands").acl(ACL_CONNECTION),
        CommandSpec::new("command|docs", -2, LOADING | STALE, docs)
            .group("server")
            .doc("7.0.0", "Get array of specific Redis command documentation")
            .acl(ACL_CONNECTION),
        CommandSpec::new("command|getkeys", -4, LOADING | STALE, getkeys)
            .group("server")
            .doc("2.8.13", "Extract keys given a full Redis command")
            .acl(ACL_CONNECTION),
        CommandSpec::new("command|getkeysandflags", -4, LOADING | STALE, getkeysandflags)
            .group("server")
            .doc("7.0.0", "Extract keys and access flags given a full Redis command")
            .acl(ACL_CONNECTION),
        CommandSpec::new("command|help", 2, LOADING | STALE, help)
            .group("server")
            .doc("5.0.0", "Show helpful text about the different subcommands")
            .acl(ACL_CONNECTION),
        CommandSpec::new("command|info", -2, LOADING | STALE, info)
            .group("server")
            .doc("2.8.13", "Get array of specific Redis command details, or all when no argument is given")
            .acl(ACL_CONNECTION),
        CommandSpec::new("command|list", -2, LOADING | STALE, list).group("server").doc("7.0.0", "Get an array of Redis command names").acl(ACL_CONNECTION),
    ]
}

/// Redis's ACL categories, in the order COMMAND INFO lists them.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// A command's ACL categories: its own, those its group implies, and those its
/// flags imply (as Redis's setImplicitACLCategories), in Redis's order.
pub fn acl_categories(spec: &CommandSpec) -> Vec<&'static str> {
    if let Some(info) = super::docs::info(spec.name) {
        return info[6].items().iter().filter_map(|c| c.as_str()).map(|c| c.trim_start_matches('@')).collect();
    }
    let mut cats: Vec<&str> = spec.acl_categories.to_vec();
    let group_cat = match spec.group {
        "generic" => Some("keyspace"),
        "string" => Some("string"),
        "list" => Some("list"),
        "set" => Some("set"),
        "sorted-set" | "sorted_set" => Some("sortedset"),
        "hash" => Some("hash"),
        "bitmap" => Some("bitmap"),
        "hyperloglog" => Some("hyperloglog"),
        "geo" => Some("geo"),
        "stream" => Some("stream"),
        "pubsub" => Some("pubsub"),
        "connection" => Some("connection"),
        "transactions" => Some("transaction"),
        "scripting" => Some("scripting"),
        _ => None,
    };
    // A container's categories are only its own (Redis gives CONFIG just @slow).
    let is_container = CommandTable::get().has_subcommands(spec.name);
    if !is_container {
        cats.extend(group_cat);
        if spec.flags & WRITE != 0 {
            cats.push("write");
        }
        if spec.flags & READONLY != 0 {
            cats.push("read");
        }
        if spec.flags & ADMIN != 0 {
            cats.extend(["admin", "dangerous"]);
        }
        if spec.flags & PUBSUB != 0 {
            cats.push("pubsub");
        }
        if spec.flags & FAST != 0 {
            cats.push("fast");
        }
        if spec.flags & BLOCKING != 0 {
            cats.push("blocking");
        }
        if spec.flags & FAST == 0 {
            cats.push("slow");
        }
    }
    CATEGORIES.iter().copied().filter(|c| cats.contains(c)).collect()
}

fn flag_names(spec: &CommandSpec) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = flags::NAMES.iter().filter(|(f, _)| spec.flags & f != 0).map(|(_, n)| *n).collect();
    // Redis's populateCommandMovableKeys: a command whose keys are found by a
    // function (numkeys, SORT's STORE; SORT_RO has sortROGetKeys) has
    // "movablekeys", listed before "allow_busy".
    if spec.keys.find.is_some() || spec.name == "sort_ro" {
        let at = names.iter().position(|n| *n == "allow_busy").unwrap_or(names.len());
        names.insert(at, "movablekeys");
    }
    names
}

/// Key-spec flags approximating Redis's, for a command redis-server 7.0 does
/// not have (no `docs::info` entry): read-only commands access their keys,
/// writing commands read-write-update them.
fn key_spec_flags(spec: &CommandSpec) -> &'static [&'static str] {
    if spec.name == "watch" {
        // WATCH neither reads nor writes its keys.
        return &["RO"];
    }
    // SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH: shard channels, hashed like keys.
    if spec.flags & PUBSUB != 0 {
        &["not_key"]
    } else if spec.flags & WRITE != 0 {
        &["RW", "update"]
    } else {
        &["RO", "access"]
    }
}

/// The flags COMMAND GETKEYSANDFLAGS gives the key at `cmd[pos]`: those
/// of the first of Redis's key specs that finds it, except for the commands
/// whose flags depend on their arguments (Redis's getkeys functions for
/// specs flagged `variable_flags`, and SORT's `unknown` spec).
fn key_flags_at(spec: &CommandSpec, cmd: &[&[u8]], pos: usize) -> Vec<&'static str> {
    match spec.name {
        // setGetKeys: SET ... GET reads the old value.
        "set" if cmd.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get")) => return vec!["RW", "access", "update"],
        "set" => return vec!["OW", "update"],
        "bitfield" if bitfield_reads_only(cmd) => return vec!["RO", "access"],
        "bitfield" => return vec!["RW", "access", "update"],
        // sortGetKeys: the sorted key is read, the STORE destination overwritten.
        "sort" if pos == 1 => return vec!["RO", "access"],
        "sort" => return vec!["OW", "update"],
        _ => {}
    }
    let Some(info) = super::docs::info(spec.name) else {
        return key_spec_flags(spec).to_vec();
    };
    for ks in info[8].items() {
        if key_spec_positions(ks, cmd).any(|p| p == pos) {
            let flags = super::docs::get(ks, "flags").map_or(&[][..], |f| f.items());
            return flags.iter().filter_map(|f| f.as_str()).collect();
        }
    }
    key_spec_flags(spec).to_vec()
}

/// Redis's bitfieldGetKeys: only GET (and OVERFLOW) operations read.
fn bitfield_reads_only(cmd: &[&[u8]]) -> bool {
    let mut i = 2;
    while i < cmd.len() {
        let rest = cmd.len() - i - 1;
        let op = cmd[i];
        if op.eq_ignore_ascii_case(b"get") && rest >= 2 {
            i += 3;
        } else if op.eq_ignore_ascii_case(b"overflow") && rest >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// The positions one key spec finds in `cmd` (Redis's getKeysUsingKeySpecs):
/// its begin_search (an index, or a keyword searched from `startfrom`), then
/// its find_keys (a range, or a count argument). Nothing for `unknown`
/// specs or where the arguments do not fit the spec.
fn key_spec_positions(ks: &super::docs::D, cmd: &[&[u8]]) -> impl Iterator<Item = usize> {
    use super::docs::get;
    let argc = cmd.len() as i64;
    let found = (|| {
        let begin = get(ks, "begin_search")?;
        let bspec = get(begin, "spec")?;
        let first = match get(begin, "type")?.as_str()? {
            "index" => get(bspec, "index")?.as_int()?,
            "keyword" => {
                let word = get(bspec, "keyword")?.as_str()?.as_bytes();
                let from = get(bspec, "startfrom")?.as_int()?;
                let hit = if from > 0 {
                    (from..argc).find(|&i| cmd[i as usize].eq_ignore_ascii_case(word))
                } else {
                    (1..=argc + from).rev().find(|&i| cmd[i as usize].eq_ignore_ascii_case(word))
                };
                hit? + 1
            }
            _ => return None,
        };
        let find = get(ks, "find_keys")?;
        let fspec = get(find, "spec")?;
        let (first, last, step) = match get(find, "type")?.as_str()? {
            "range" => {
                let lastkey = get(fspec, "lastkey")?.as_int()?;
                let limit = get(fspec, "limit")?.as_int()?;
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit <= 1 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, get(fspec, "keystep")?.as_int()?)
            }
            "keynum" => {
                let at = first + get(fspec, "keynumidx")?.as_int()?;
                let n: i64 = std::str::from_utf8(cmd.get(at as usize)?).ok()?.parse().ok()?;
                let first = first + get(fspec, "firstkey")?.as_int()?;
                let step = get(fspec, "keystep")?.as_int()?;
                (first, first + (n - 1) * step, step)
            }
            _ => return None,
        };
        (first >= 1 && step >= 1 && last < argc).then_some((first, last, step))
    })();
    let (first, last, step) = found.unwrap_or((1, 0, 1));
    (first..=last).step_by(step as usize).map(|p| p as usize)
}

fn reply_info(r: &mut Reply, id: usize) {
    let table = CommandTable::get();
    let spec = &table.specs[id];
    // Redis's own entry where it has the command (a unit test keeps its
    // subcommands those of the table); else what the table knows.
    if let Some(items) = super::docs::info(spec.name) {
        r.array(items.len());
        items.iter().for_each(|d| super::docs::emit(r, d));
        return;
    }
    r.array(10);
    r.bulk(spec.name.as_bytes());
    r.int(spec.arity as i64);
    let f = flag_names(spec);
    r.set(f.len());
    for n in f {
        r.simple(n);
    }
    r.int(spec.keys.first as i64);
    r.int(spec.keys.last as i64);
    r.int(spec.keys.step as i64);
    let cats = acl_categories(spec);
    r.set(cats.len());
    for c in cats {
        r.simple(&format!("@{}", c));
    }
    // Tips: none.
    r.set(0);
    // Key specifications: one range spec for a command with key positions.
    // Key specs and subcommands are sets in RESP3, as Redis 7.0 sends them.
    if spec.keys.first > 0 {
        let k = spec.keys;
        r.set(1);
        r.map(3);
        r.bulk(b"flags");
        let kf = key_spec_flags(spec);
        r.set(kf.len());
        for n in kf {
            r.simple(n);
        }
        r.bulk(b"begin_search");
        r.map(2);
        r.bulk(b"type");
        r.bulk(b"index");
        r.bulk(b"spec");
        r.map(1);
        r.bulk(b"index");
        r.int(k.first as i64);
        r.bulk(b"find_keys");
        r.map(2);
        r.bulk(b"type");
        r.bulk(b"range");
        r.bulk(b"spec");
        r.map(3);
        r.bulk(b"lastkey");
        r.int(if k.last < 0 { k.last as i64 } else { (k.last - k.first) as i64 });
        r.bulk(b"keystep");
        r.int(k.step.max(1) as i64);
        r.bulk(b"limit");
        r.int(0);
    } else {
        r.set(0);
    }
    let subs = table.subcommands_of(spec.name);
    r.set(subs.len());
    for s in subs {
        reply_info(r, s);
    }
}

fn reply_docs(r: &mut Reply, id: usize) {
    let table = CommandTable::get();
    let spec = &table.specs[id];
    let subs = table.subcommands_of(spec.name);
    // Redis's own documentation where it has the command (arguments included:
    // redis-cli builds its hints from them); else what the table knows.
    if let Some(fields) = super::docs::fields(spec.name) {
        r.map(fields.len() + (!subs.is_empty()) as usize);
        super::docs::emit_pairs(r, fields);
    } else {
        r.map(3 + (!subs.is_empty()) as usize);
        r.bulk(b"summary");
        r.bulk(spec.summary.as_bytes());
        r.bulk(b"since");
        r.bulk(spec.since.as_bytes());
        r.bulk(b"group");
        r.bulk(spec.group.as_bytes());
    }
    if !subs.is_empty() {
        r.bulk(b"subcommands");
        r.map(subs.len());
        for s in subs {
            r.bulk(table.specs[s].name.as_bytes());
            reply_docs(r, s);
        }
    }
}

/// Finds a command by name, `container|sub` names included.
fn lookup_name(name: &[u8]) -> Option<usize> {
    let table = CommandTable::get();
    match name.iter().position(|&c| c == b'|') {
        Some(i) => {
            let container = table.lookup(&name[..i])?;
            table.lookup_sub(table.specs[container].name, &name[i + 1..])
        }
        None => table.lookup(name),
    }
}

fn all(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let ids: Vec<usize> = CommandTable::get().top_level().collect();
    r.array(ids.len());
    for id in ids {
        reply_info(r, id);
    }
}

fn count(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.int(CommandTable::get().top_level().count() as i64);
}

fn info(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() == 2 {
        return all(ctx, args, r);
    }
    r.array(args.len() - 2);
    for name in &args[2..] {
        match lookup_name(name) {
            Some(id) => reply_info(r, id),
            None => r.null(),
        }
    }
}

fn docs(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let ids: Vec<usize> = if args.len() == 2 { CommandTable::get().top_level().collect() } else { args[2..].iter().filter_map(|n| lookup_name(n)).collect() };
    r.map(ids.len());
    for id in ids {
        r.bulk(CommandTable::get().specs[id].name.as_bytes());
        reply_docs(r, id);
    }
}

fn list(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let table = CommandTable::get();
    enum Filter {
        None,
        Module,
        AclCat(String),
        Pattern(Vec<u8>),
    }
    let filter = match args.len() {
        2 => Filter::None,
        5 if args[2].eq_ignore_ascii_case(b"filterby") => {
            let value = args[4];
            if args[3].eq_ignore_ascii_case(b"module") {
                Filter::Module
            } else if args[3].eq_ignore_ascii_case(b"aclcat") {
                Filter::AclCat(String::from_utf8_lossy(value).to_ascii_lowercase())
            } else if args[3].eq_ignore_ascii_case(b"pattern") {
                Filter::Pattern(value.to_vec())
            } else {
                r.error(super::err::SYNTAX);
                return;
            }
        }
        _ => {
            r.error(super::err::SYNTAX);
            return;
        }
    };
    // Top-level commands, each followed by its subcommands, as Redis lists them.
    let mut names: Vec<&str> = vec![];
    for id in table.top_level() {
        for i in std::iter::once(id).chain(table.subcommands_of(table.specs[id].name)) {
            let spec = &table.specs[i];
            let keep = match &filter {
                Filter::None => true,
                Filter::Module => false,
                Filter::AclCat(c) => acl_categories(spec).contains(&c.as_str()),
                Filter::Pattern(p) => crate::config::glob_match(p, spec.name.as_bytes(), true),
            };
            if keep {
                names.push(spec.name);
            }
        }
    }
    r.array(names.len());
    for n in names {
        r.bulk(n.as_bytes());
    }
}

/// The command of a GETKEYS request and its key positions, or Redis's error.
fn keys_of(args: &[&[u8]]) -> Result<(usize, Vec<usize>), &'static str> {
    let table = CommandTable::get();
    let cmd = &args[2..];
    let mut id = table.lookup(cmd[0]).ok_or("ERR Invalid command specified")?;
    if table.has_subcommands(table.specs[id].name) && cmd.len() >= 2 {
        id = table.lookup_sub(table.specs[id].name, cmd[1]).ok_or("ERR Invalid command specified")?;
    }
    let spec = &table.specs[id];
    // Shard channels are hashed like keys but flagged `not_key`: GETKEYS
    // leaves them out, as Redis's default key-spec search does.
    if spec.keys.first <= 0 && spec.keys.find.is_none() || spec.flags & PUBSUB != 0 {
        return Err("ERR The command has no key arguments");
    }
    let argc = cmd.len() as i32;
    if (spec.arity > 0 && spec.arity != argc) || argc < -spec.arity {
        return Err("ERR Invalid number of arguments specified for command");
    }
    Ok((id, key_positions(&spec.keys, cmd).collect()))
}

fn getkeys(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match keys_of(args) {
        Err(e) => r.error(e),
        Ok((_, positions)) => {
            r.array(positions.len());
            for p in positions {
                r.bulk(args[2 + p]);
            }
        }
    }
}

fn getkeysandflags(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match keys_of(args) {
        Err(e) => r.error(e),
        Ok((id, positions)) => {
            let spec = &CommandTable::get().specs[id];
            r.array(positions.len());
            for p in positions {
                let kf = key_flags_at(spec, &args[2..], p);
                r.array(2);
                r.bulk(args[2 + p]);
                r.set(kf.len());
                for f in kf {
                    r.simple(f);
                }
            }
        }
    }
}

fn help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    super::config::help_reply(
        r,
        "command",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_info_get_matches_redis_in_resp2_and_resp3() {
        let id = CommandTable::get().lookup(b"get").unwrap();
        let mut b = vec![];
        reply_info(&mut Reply::new(&mut b, 3), id);
        // Taken from redis-server 7.0.15's `COMMAND INFO get` after HELLO 3.
        let redis = b"*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n";
        assert_eq!(String::from_utf8_lossy(&b), String::from_utf8_lossy(redis));
    }

    /// Redis 7.0.15's introspection-2.tcl: commands whose keys a function
    /// finds are "movablekeys", plain key ranges are not.
    #[test]
    fn movablekeys_as_redis_marks_it() {
        let table = CommandTable::get();
        let flags = |name: &str| flag_names(&table.specs[lookup_name(name.as_bytes()).unwrap()]);
        for name in ["zunionstore", "zinter", "sort", "sort_ro", "lmpop", "sintercard"] {
            assert!(flags(name).contains(&"movablekeys"), "{}: {:?}", name, flags(name));
        }
        assert_eq!(flags("zunionstore"), ["write", "denyoom", "movablekeys"]);
        for name in ["set", "get", "mset", "bitfield", "lmove", "lpop", "ping", "memory", "memory|usage", "rename"] {
            assert!(!flags(name).contains(&"movablekeys"), "{}: {:?}", name, flags(name));
        }
    }

    /// The COMMAND INFO data (`gen_docs.py`) and the table agree: every
    /// command's arity, its flags (what ringkv acts on must be what Redis
    /// reports) and its subcommands. Fails when commands were added without
    /// running `python3 src/commands/gen_docs.py` again.
    #[test]
    fn command_info_data_matches_the_table() {
        let t = CommandTable::get();
        let mut problems = vec![];
        for (id, spec) in t.specs.iter().enumerate() {
            let Some(info) = super::super::docs::info(spec.name) else {
                continue;
            };
            if info[1].as_int() != Some(spec.arity as i64) {
                problems.push(format!("{}: arity {} vs Redis's {:?}", spec.name, spec.arity, info[1].as_int()));
            }
            let theirs: Vec<&str> = info[2].items().iter().filter_map(|f| f.as_str()).collect();
            let ours = flag_names(spec);
            if theirs != ours {
                problems.push(format!("{}: flags {:?} vs Redis's {:?}", spec.name, ours, theirs));
            }
            let mut subs: Vec<&str> = info[9].items().iter().filter_map(|e| e.items().first().and_then(|n| n.as_str())).collect();
            let mut table_subs: Vec<&str> = t.subcommands_of(spec.name).into_iter().map(|i| t.specs[i].name).collect();
            subs.sort();
            table_subs.sort();
            if subs != table_subs {
                problems.push(format!("{}: subcommands {:?} vs data {:?}", spec.name, table_subs, subs));
            }
            let _ = id;
        }
        assert!(problems.is_empty(), "run python3 src/commands/gen_docs.py, or fix the table:\n{}", problems.join("\n"));
    }

    /// GETKEYSANDFLAGS from Redis's key specs, as redis-server 7.0.15 answers.
    #[test]
    fn key_flags_from_redis_key_specs() {
        let t = CommandTable::get();
        let at = |cmd: &[&str], pos: usize| {
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            let id = lookup_name(cmd[0].as_bytes()).unwrap();
            key_flags_at(&t.specs[id], &args, pos)
        };
        assert_eq!(at(&["append", "k", "v"], 1), ["RW", "insert"]);
        assert_eq!(at(&["lmove", "a", "b", "left", "right"], 1), ["RW", "access", "delete"]);
        assert_eq!(at(&["lmove", "a", "b", "left", "right"], 2), ["RW", "insert"]);
        assert_eq!(at(&["msetnx", "a", "1", "b", "2"], 3), ["OW", "insert"]);
        assert_eq!(at(&["zunionstore", "d", "2", "a", "b"], 1), ["OW", "update"]);
        assert_eq!(at(&["zunionstore", "d", "2", "a", "b"], 4), ["RO", "access"]);
        assert_eq!(at(&["bitfield", "k", "get", "u8", "0"], 1), ["RO", "access"]);
        assert_eq!(at(&["bitfield", "k", "incrby", "u8", "0", "1"], 1), ["RW", "access", "update"]);
        assert_eq!(at(&["set", "k", "v", "get"], 1), ["RW", "access", "update"]);
    }

    #[test]
    fn categories_follow_redis_order() {
        let t = CommandTable::get();
        let cfg = t.lookup_sub("config", b"get").unwrap();
        assert_eq!(acl_categories(&t.specs[cfg]), vec!["admin", "slow", "dangerous"]);
        let cmd = t.lookup(b"command").unwrap();
        assert_eq!(acl_categories(&t.specs[cmd]), vec!["slow", "connection"]);
    }
}
