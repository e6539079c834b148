//! The command table and what is common to every command.
//!
//! The table is data: name, arity, flags, key positions, routing, handler.
//! Lookup, arity, authentication, routing to the owning shard and statistics
//! happen once in `network::dispatch`, never inside handlers. Handlers are
//! grouped by family, one file each, and write replies through `Reply`,
//! which alone knows RESP2 from RESP3.

pub mod acl;
pub mod bitmap;
pub mod blocking;
pub mod client;
pub mod cluster;
pub mod command;
pub mod config;
pub mod connection;
pub mod diagnostics;
pub mod docs;
pub mod dump;
pub mod migrate;
#[rustfmt::skip]
mod docs_data;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod info;
pub mod keys;
pub mod list;
pub mod lookup;
pub mod memory;
pub mod multi;
pub mod persistence;
mod pqsort;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod tracking;
pub mod zset;

/// The command table's maps: looked up on every command, so not SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::OnceLock;

use crate::protocol::Reply;
use crate::server::Server;
use crate::shard::hold::{Pair, ShardMask, ShardSet};
use crate::shard::slot::key_shard;
use crate::shard::{Db, ShardState};

pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 14;
    pub const ALLOW_BUSY: u32 = 1 << 15;
    pub const NO_MULTI: u32 = 1 << 16;
    pub const ASKING: u32 = 1 << 17;
    pub const SENTINEL: u32 = 1 << 18;
    /// Refused while a replica loads asynchronously (reported only: ringkv
    /// has no replication yet).
    pub const NO_ASYNC_LOADING: u32 = 1 << 19;
    /// Internal (not a Redis flag, not shown): the EVAL family, which the
    /// loop runs with every shard held (`network::script`).
    pub const RUNS_SCRIPT: u32 = 1 << 20;

    /// Names as COMMAND INFO reports them, in Redis's order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (SENTINEL, "sentinel"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command runs.
#[derive(Clone, Copy)]
pub enum Route {
    /// On the connection's own shard, with access to the client (PING, SELECT, HELLO, TIME...).
    Local,
    /// On the shard(s) owning the keys at the spec's key positions. One shard:
    /// runs there (a message if it is another shard's); several: held execution.
    Keys,
    /// Every shard held (INFO, DBSIZE, KEYS, FLUSHALL, CONFIG SET, ...).
    All,
    /// The command computes its own shard set (SCAN by cursor, ...).
    Custom(fn(&[&[u8]], usize) -> ShardMask),
    /// On the connection's own shard with the client, holding the shards
    /// the function names from the client and the arguments (SUBSCRIBE
    /// holds its channels' owners); never forwarded.
    Client(fn(&ClientState, &[&[u8]], usize) -> ShardMask),
}

/// First key, last key (-1: the last argument, -2: the one before...), step:
/// Redis's legacy triple, which COMMAND INFO shows. Commands whose keys
/// depend on their arguments (a `numkeys` count, a STORE keyword) also have
/// `find`, Redis's `getkeys_proc`: it then alone says where the keys are,
/// for routing and COMMAND GETKEYS.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeySpec {
    pub first: i32,
    pub last: i32,
    pub step: i32,
    pub find: Option<KeysFn>,
}

/// Pushes the key positions of `args` (args[0] is the command name) onto
/// the vector. Invalid arguments (a bad `numkeys`) find no keys: the
/// command then runs on the client's shard and its handler replies the error.
pub type KeysFn = fn(&[&[u8]], &mut Vec<usize>);

/// `find` for commands with a key count at `args[at]` followed by that many
/// keys (ZUNION, SINTERCARD, LMPOP, ...). Positions before `at` that are
/// keys (ZUNIONSTORE's destination) come from the caller.
pub fn numkeys_keys(args: &[&[u8]], at: usize, out: &mut Vec<usize>) {
    let Some(n) = args.get(at).and_then(|a| std::str::from_utf8(a).ok()).and_then(|s| s.parse::<i64>().ok()) else {
        return;
    };
    if n <= 0 || n as u64 > (args.len() - at - 1) as u64 {
        return;
    }
    out.extend(at + 1..at + 1 + n as usize);
}

/// Key positions: the legacy range, or what `find` says.
pub enum KeyPositions {
    Range(std::iter::StepBy<std::ops::Range<usize>>),
    Found(std::vec::IntoIter<usize>),
}

impl Iterator for KeyPositions {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        match self {
            KeyPositions::Range(r) => r.next(),
            KeyPositions::Found(v) => v.next(),
        }
    }
}

pub type Handler = fn(&mut Ctx, &[&[u8]], &mut Reply);

pub struct CommandSpec {
    /// Lower case; `container|sub` for subcommands.
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub route: Route,
    pub handler: Handler,
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub acl_categories: &'static [&'static str],
    /// A container with subcommands (CONFIG, CLIENT, ...): set by the
    /// table. Here, not in a table of its own, so that the test on every
    /// command reads the spec it has loaded already.
    pub container: bool,
}

impl CommandSpec {
    pub const fn new(name: &'static str, arity: i32, flags: u32, handler: Handler) -> CommandSpec {
        CommandSpec {
            name,
            arity,
            flags,
            keys: KeySpec { first: 0, last: 0, step: 0, find: None },
            route: Route::Local,
            handler,
            group: "generic",
            summary: "",
            since: "1.0.0",
            acl_categories: &[],
            container: false,
        }
    }
    /// Keyed command: keys at first..=last by step; routed by key.
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> CommandSpec {
        self.keys = KeySpec { first, last, step, find: None };
        self.route = Route::Keys;
        self
    }
    /// Keys found by `find` (see `KeySpec`); `keys()` first sets the legacy triple.
    pub const fn find_keys(mut self, find: KeysFn) -> CommandSpec {
        self.keys.find = Some(find);
        self.route = Route::Keys;
        self
    }
    pub const fn route(mut self, route: Route) -> CommandSpec {
        self.route = route;
        self
    }
    pub const fn group(mut self, group: &'static str) -> CommandSpec {
        self.group = group;
        self
    }
    pub const fn doc(mut self, since: &'static str, summary: &'static str) -> CommandSpec {
        self.since = since;
        self.summary = summary;
        self
    }
    pub const fn acl(mut self, cats: &'static [&'static str]) -> CommandSpec {
        self.acl_categories = cats;
        self
    }
    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }
    /// `config|get` -> `config get` style full name used in arity errors is `config|get`.
    pub fn container(&self) -> Option<&'static str> {
        self.name.split_once('|').map(|(c, _)| c)
    }
}

/// A one-entry cache in front of `CommandTable::lookup`.
#[derive(Default)]
pub struct LastCommand {
    len: usize,
    name: [u8; 16],
    id: usize,
}

impl LastCommand {
    /// The hit inline, its name compared by a few loads (no `memcmp` call,
    /// ~18 instructions a command); the table looked up out of line.
    #[inline(always)]
    pub fn lookup(&mut self, table: &CommandTable, name: &[u8]) -> Option<usize> {
        if name.len() == self.len && same_short_name(name, &self.name) {
            return Some(self.id);
        }
        self.lookup_table(table, name)
    }

    #[inline(never)]
    fn lookup_table(&mut self, table: &CommandTable, name: &[u8]) -> Option<usize> {
        let id = table.lookup(name)?;
        if name.len() <= self.name.len() {
            self.name[..name.len()].copy_from_slice(name);
            self.len = name.len();
            self.id = id;
        }
        Some(id)
    }
}

/// Whether `a` (1 to 16 bytes) is the start of `b`: 1-3 bytes by their
/// first, middle and last byte (together all of them), 4-16 as two
/// overlapping words. An empty name never matches (no command has one; the
/// table says so).
#[inline(always)]
fn same_short_name(a: &[u8], b: &[u8; 16]) -> bool {
    let n = a.len();
    let w32 = |s: &[u8], i: usize| u32::from_ne_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    let w64 = |s: &[u8], i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    match n {
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => w32(a, 0) == w32(b, 0) && w32(a, n - 4) == w32(b, n - 4),
        8..=16 => w64(a, 0) == w64(b, 0) && w64(a, n - 8) == w64(b, n - 8),
        _ => false,
    }
}

pub struct CommandTable {
    pub specs: Vec<CommandSpec>,
    by_name: HashMap<&'static [u8], usize>,
    /// For container commands: subcommand name -> id.
    subcommands: HashMap<&'static str, HashMap<&'static str, usize>>,
}

impl CommandTable {
    fn build() -> CommandTable {
        let mut specs = vec![];
        specs.extend(string::commands());
        specs.extend(hash::commands());
        specs.extend(list::commands());
        specs.extend(blocking::commands());
        specs.extend(bitmap::commands());
        specs.extend(sort::commands());
        specs.extend(set::commands());
        specs.extend(zset::commands());
        specs.extend(hll::commands());
        specs.extend(geo::commands());
        specs.extend(stream::commands());
        specs.extend(keys::commands());
        specs.extend(dump::commands());
        specs.extend(migrate::commands());
        specs.extend(memory::commands());
        specs.extend(connection::commands());
        specs.extend(server::commands());
        specs.extend(cluster::commands());
        specs.extend(client::commands());
        specs.extend(tracking::commands());
        specs.extend(config::commands());
        specs.extend(info::commands());
        specs.extend(command::commands());
        specs.extend(diagnostics::commands());
        specs.extend(persistence::commands());
        specs.extend(multi::commands());
        specs.extend(pubsub::commands());
        specs.extend(replication::commands());
        specs.extend(scripting::commands());
        specs.extend(acl::commands());
        let mut by_name = HashMap::default();
        let mut subcommands: HashMap<&'static str, HashMap<&'static str, usize>> = HashMap::default();
        for (i, s) in specs.iter().enumerate() {
            if let Some((c, sub)) = s.name.split_once('|') {
                subcommands.entry(c).or_default().insert(sub, i);
            } else {
                let dup = by_name.insert(s.name.as_bytes(), i);
                assert!(dup.is_none(), "command {} registered twice", s.name);
            }
        }
        for s in specs.iter_mut() {
            s.container = subcommands.contains_key(s.name);
        }
        CommandTable { specs, by_name, subcommands }
    }

    pub fn get() -> &'static CommandTable {
        static TABLE: OnceLock<CommandTable> = OnceLock::new();
        TABLE.get_or_init(CommandTable::build)
    }

    /// Looks a command name up case-insensitively without allocating.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; 32];
        if name.len() > buf.len() {
            return None;
        }
        for (d, s) in buf.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        self.by_name.get(&buf[..name.len()]).copied()
    }

    pub fn lookup_sub(&self, container: &str, sub: &[u8]) -> Option<usize> {
        let subs = self.subcommands.get(container)?;
        let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
        subs.get(lower.as_str()).copied()
    }

    /// Whether command `id` is a container with subcommands.
    #[inline]
    pub fn is_container(&self, id: usize) -> bool {
        self.specs[id].container
    }

    pub fn has_subcommands(&self, name: &str) -> bool {
        self.subcommands.contains_key(name)
    }

    pub fn subcommands_of(&self, name: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self.subcommands.get(name).map(|m| m.values().copied().collect()).unwrap_or_default();
        v.sort();
        v
    }

    /// Top-level command ids (no subcommands), in table order.
    pub fn top_level(&self) -> impl Iterator<Item = usize> + '_ {
        self.specs.iter().enumerate().filter(|(_, s)| !s.name.contains('|')).map(|(i, _)| i)
    }
}

/// Positions of the keys of `args` under `spec`'s key spec.
pub fn key_positions(spec: &KeySpec, args: &[&[u8]]) -> KeyPositions {
    if let Some(find) = spec.find {
        let mut v = Vec::new();
        find(args, &mut v);
        return KeyPositions::Found(v.into_iter());
    }
    let argc = args.len();
    let first = spec.first.max(0) as usize;
    let last = if spec.last < 0 { argc as i64 + spec.last as i64 } else { spec.last as i64 };
    let step = spec.step.max(1) as usize;
    let last = last.min(argc as i64 - 1);
    let range = if spec.first <= 0 || last < first as i64 { 0..0 } else { first..(last as usize + 1) };
    KeyPositions::Range(range.step_by(step))
}

/// The shards owning the keys of a command.
pub fn key_mask(spec: &CommandSpec, args: &[&[u8]], shards: usize) -> ShardMask {
    // One key at a fixed position (most commands): no position iterator.
    let k = &spec.keys;
    if k.find.is_none() && k.first > 0 && k.first == k.last {
        return match args.get(k.first as usize) {
            Some(key) => ShardMask::single(key_shard(key, shards)),
            None => ShardMask::default(),
        };
    }
    let mut mask = ShardMask::default();
    for i in key_positions(&spec.keys, args) {
        mask.insert(key_shard(args[i], shards));
    }
    mask
}

/// Reply-mode of a client (CLIENT REPLY).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    Skip,
    /// SKIP was just issued: skip the next command's reply, then On.
    SkipNext,
}

/// Connection-level state, visible to `Route::Local` and held commands.
#[derive(Debug, Default)]
pub struct ClientState {
    pub id: u64,
    pub db: usize,
    pub resp: u8,
    pub authenticated: bool,
    /// The connection's ACL user (`crate::acl::ClientAcl`).
    pub acl: crate::acl::ClientAcl,
    pub name: Vec<u8>,
    pub addr: String,
    pub laddr: String,
    pub created_ms: i64,
    pub reply_mode: ReplyMode,
    pub close_after_reply: bool,
    pub monitor: bool,
    pub no_evict: bool,
    /// READONLY was issued (cluster read from replicas; reported as flag `r`).
    pub readonly: bool,
    /// Set by RESET / HELLO etc. to tell the loop to refresh the client's registry entry.
    pub info_dirty: bool,
    /// MULTI: the queued commands and the transaction's flags.
    pub multi: multi::MultiState,
    /// WATCH: the watched keys.
    pub watch: multi::WatchState,
    /// Pub/sub subscriptions and the connection's token for deliveries.
    pub pubsub: crate::messaging::pubsub::ClientSubs,
    /// CLIENT TRACKING state (`messaging::tracking`).
    pub tracking: crate::messaging::tracking::ClientTracking,
    /// Bytes of the input the running command was parsed from (what Redis's
    /// query buffer holds while a command runs: CLIENT LIST/INFO `qbuf=`).
    pub input_len: usize,
    /// Spare capacity of the query buffer the running command was parsed
    /// from (0 when parsed in place from a receive buffer): CLIENT INFO's
    /// `qbuf-free` for the caller.
    pub input_free: usize,
    /// REPLCONF, SYNC/PSYNC and WAIT state (`replication`).
    pub repl: crate::replication::ClientRepl,
    /// A DEBUG LOADAOF waiting for its load (`persistence::aof_reload`).
    pub loadaof: crate::persistence::aof_reload::Waiting,
}

impl ClientState {
    /// Redis's CLIENT_PUBSUB flag: subscribed to at least one channel,
    /// pattern or shard channel.
    #[inline]
    pub fn in_pubsub_mode(&self) -> bool {
        self.pubsub.any()
    }
}

/// Everything a handler may touch. Shard access goes through `&mut self`
/// (or the `shards` field, borrowed apart from the plain fields), so the
/// borrow checker sees every `&mut` to a shard: a handler cannot hold two to
/// one `Db`; two shards or databases at once come from `pair_dbs`.
pub struct Ctx<'a> {
    pub shards: &'a mut ShardSet,
    /// The shard whose thread runs this command.
    pub home: usize,
    pub shard_count: usize,
    pub db: usize,
    pub resp: u8,
    pub now_ms: i64,
    pub server: &'a Server,
    /// Present for commands run on the connection's own thread.
    pub client: Option<&'a mut ClientState>,
    /// The command runs for a client of another shard (`execute_remote`):
    /// `client` is absent but its output-buffer limit still applies
    /// (`reply_bytes_stop`), unlike a script's or the AOF loader's.
    pub client_elsewhere: bool,
    /// What the command propagates, when not its arguments as sent (set
    /// by handlers only when `propagating()`).
    pub propagate: crate::exec::propagate::Propagate,
    /// True while EXEC runs the queued commands (Redis's `CLIENT_MULTI`
    /// during `execCommand`): blocking commands do not block.
    pub in_multi: bool,
    /// MONITOR lines of the commands a script ran through this command
    /// (EVAL's own first), shown after its own (`exec::call`).
    pub nested_monitor: Vec<u8>,
    /// What `exec::call` records for this run (set by the handler).
    pub record: Record,
}

/// What `exec::call` records after a handler (`Ctx::record`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Record {
    /// Everything: commandstats, errorstats, latency, slowlog, MONITOR.
    #[default]
    All,
    /// The command blocks for its reply (WAIT deferred): all but the
    /// slowlog and the latency monitor, as Redis's `call()` skips them
    /// for a client it left `CLIENT_BLOCKED` (a WAIT that times out is in
    /// neither).
    Blocked,
    /// Nothing: this run only resumes the same command of the same client,
    /// run before and deferred for its reply (WAIT, DEBUG LOADAOF:
    /// `ClientRepl::wait_pending`), so that it counts once, as in Redis,
    /// which runs it once.
    Resumed,
}

impl<'a> Ctx<'a> {
    /// The context of one command run on shard `home` over `shards`.
    pub fn new(shards: &'a mut ShardSet, server: &'a Server, home: usize, db: usize, resp: u8, now_ms: i64, client: Option<&'a mut ClientState>) -> Ctx<'a> {
        Ctx {
            shards,
            home,
            shard_count: server.shard_count,
            db,
            resp,
            now_ms,
            server,
            client,
            client_elsewhere: false,
            propagate: Default::default(),
            in_multi: false,
            nested_monitor: Vec::new(),
            record: Record::All,
        }
    }
    /// Whether dropping this context frees anything: a rewritten form to
    /// propagate or a script's MONITOR lines. A caller that keeps it in a
    /// `ManuallyDrop` (`network::dispatch`'s `execute_here`) drops it only
    /// then. Every field is named here, so that a new field that owns
    /// memory is decided on.
    #[inline(always)]
    pub fn owns_memory(&self) -> bool {
        let Ctx {
            shards: _,
            home: _,
            shard_count: _,
            db: _,
            resp: _,
            now_ms: _,
            server: _,
            client: _,
            client_elsewhere: _,
            propagate,
            in_multi: _,
            nested_monitor,
            record: _,
        } = self;
        matches!(propagate, crate::exec::propagate::Propagate::As(_) | crate::exec::propagate::Propagate::Many(_)) || nested_monitor.capacity() != 0
    }
    /// Whether writes are propagated (some consumer such as the AOF is on):
    /// handlers build a rewritten form only then.
    #[inline]
    pub fn propagating(&self) -> bool {
        self.shards.get(self.home).stream.is_on()
    }
    /// Propagates `argv` instead of the command's arguments (Redis's
    /// `rewriteClientCommandVector`); a no-op when nothing is propagated.
    pub fn propagate_as(&mut self, argv: &[&[u8]]) {
        if self.propagating() {
            self.propagate = crate::exec::propagate::Propagate::As(argv.iter().map(|a| a.to_vec()).collect());
        }
    }
    /// The database of `key` in the client's selected db, on the owning shard.
    #[inline]
    pub fn db(&mut self, key: &[u8]) -> &mut Db {
        let db = self.db;
        &mut self.shards.of(key).dbs[db]
    }
    /// Database `db` of the shard owning `key`.
    #[inline]
    pub fn db_at(&mut self, key: &[u8], db: usize) -> &mut Db {
        &mut self.shards.of(key).dbs[db]
    }
    /// Databases `db_a` of `key_a`'s shard and `db_b` of `key_b`'s shard at
    /// once (RENAME, COPY, MOVE): `Pair::One` when they are the same database.
    pub fn pair_dbs(&mut self, key_a: &[u8], db_a: usize, key_b: &[u8], db_b: usize) -> Pair<'_, Db> {
        let (a, b) = (key_shard(key_a, self.shard_count), key_shard(key_b, self.shard_count));
        match self.shards.pair_mut(a, b) {
            Pair::One(s) => Pair::of_slice(&mut s.dbs, db_a, db_b),
            Pair::Two(sa, sb) => Pair::Two(&mut sa.dbs[db_a], &mut sb.dbs[db_b]),
        }
    }
    /// The state of the shard running the command.
    pub fn home(&mut self) -> &mut ShardState {
        self.shards.get_mut(self.home)
    }
    /// Shard `i`, for reading (the command owns or holds it).
    pub fn shard(&self, i: usize) -> &ShardState {
        self.shards.get(i)
    }
    /// Shard `i`, mutably.
    pub fn shard_mut(&mut self, i: usize) -> &mut ShardState {
        self.shards.get_mut(i)
    }
    /// Counts a keyspace hit or miss on the owning shard (a read lookup
    /// done by hand: a miss is notified, `keymiss`).
    pub fn hit(&mut self, key: &[u8], hit: bool) {
        let db = self.db;
        let s = self.shards.of(key);
        if hit {
            s.stats.keyspace_hits += 1;
        } else {
            s.stats.keyspace_misses += 1;
            s.notify(db, crate::messaging::notify::KEY_MISS, "keymiss", key);
        }
    }
    /// `key` of database `db` changed (see `ShardState::modified`), on its shard.
    #[inline]
    pub fn modified(&mut self, db: usize, key: &[u8]) {
        self.shards.of(key).modified(db, key);
    }
    /// `key` of the client's database changed by `writes` (at least one)
    /// writes, then notified `event` of `class`: `modified`, the dirty
    /// counter as Redis counts it (`server.dirty += writes`) and `notify`,
    /// with one look-up of the key's shard for the three. Always inlined:
    /// as a call it was 43 instructions of every LPUSH/LPOP, half of them
    /// the call's own.
    #[inline(always)]
    pub fn wrote_key(&mut self, key: &[u8], writes: usize, class: u32, event: &str) {
        debug_assert!(writes > 0);
        let db = self.db;
        let shard = self.shards.of(key);
        shard.modified(db, key);
        shard.dirty += writes as u64 - 1;
        shard.notify(db, class, event, key);
    }
    /// The second key changed by one write (see `ShardState::also_modified`).
    pub fn also_modified(&mut self, db: usize, key: &[u8]) {
        self.shards.of(key).also_modified(db, key);
    }
    pub fn config(&self) -> &crate::config::Config {
        &self.shards.get(self.home).config
    }

    /// The reply size at which a command whose reply has no bound of its
    /// own (HRANDFIELD, SRANDMEMBER, ZRANDMEMBER with a negative count)
    /// stops adding to it: the hard output-buffer limit of the client's
    /// class, which closes the client after the command anyway (Redis's
    /// handlers stop at `CLIENT_CLOSE_ASAP`). Without it a count of -10^9
    /// built gigabytes for a client about to be closed (TCL unit
    /// obuf-limits, "HRANDFIELD with huge count stopped mid-run").
    /// `usize::MAX` for a script's or the loader's command, or no limit.
    pub fn reply_bytes_stop(&self) -> usize {
        let config = self.config();
        let limit = match &self.client {
            Some(c) if c.in_pubsub_mode() => config.client_output_buffer_limit_pubsub,
            Some(_) => config.client_output_buffer_limit_normal,
            None if self.client_elsewhere => config.client_output_buffer_limit_normal,
            None => return usize::MAX,
        };
        match limit.hard_bytes {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }
}

/// Common error replies (Redis's shared.* objects).
pub mod err {
    pub const LOADING: &str = "LOADING Redis is loading the dataset in memory";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const OUT_OF_RANGE: &str = "ERR index out of range";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
}

/// Parses an integer argument as Redis's `getLongLongFromObject`.
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    if arg.is_empty() || arg.len() > 20 {
        return None;
    }
    // Redis's string2ll: no leading zeros, no '+', no "-0".
    crate::shard::keyspace::canonical_int(arg)
}

/// Redis's `wrong number of arguments` error.
pub fn arity_error(name: &str) -> String {
    format!("ERR wrong number of arguments for '{}' command", name)
}

#[cfg(test)]
mod last_command_tests {
    use super::{CommandTable, LastCommand};

    /// The one-entry cache answers as the table does for every name around
    /// its compare classes, after any name was cached, the empty name included.
    #[test]
    fn last_command_is_the_table() {
        let table = CommandTable::get();
        let names: Vec<Vec<u8>> = [
            "",
            "g",
            "ge",
            "get",
            "GET",
            "gex",
            "set",
            "del",
            "ping",
            "echo",
            "getex",
            "append",
            "getrange",
            "hincrbyfloat",
            "zrangebyscore",
            "zremrangebyscore",
            "zremrangebyscorex",
            "georadius_ro",
        ]
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .collect();
        for first in &names {
            for second in &names {
                let mut cache = LastCommand::default();
                assert_eq!(cache.lookup(table, first), table.lookup(first), "{first:?}");
                assert_eq!(cache.lookup(table, second), table.lookup(second), "{second:?} after {first:?}");
                assert_eq!(cache.lookup(table, second), table.lookup(second), "{second:?} twice");
            }
        }
    }
}
