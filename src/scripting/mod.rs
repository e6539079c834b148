//! Lua scripting as Redis 7.0 has it (eval.c, script.c, script_lua.c):
//! one Lua 5.1 interpreter, the script cache (SHA-1 of the body ->
//! compiled function), the `redis` library, the sandbox, shebang flags, and
//! the run of one script through the execution seam.
//!
//! # How a script runs
//!
//! EVAL and friends route to every shard (`Route::All`): the handler runs
//! on the caller's thread with every shard owned or held, so the script is
//! atomic for every other client, and there is one script at a time in the
//! whole server. `redis.call` runs each command through `exec::call()` (the
//! one seam) on a context over the same shards, as client `lua` (MONITOR
//! shows it so) and with `Ctx::in_multi`, so that the script's writes are
//! collected and propagated as one unit at its end (Redis 7.0's effects
//! replication: MULTI/EXEC around them when more than one), never the
//! EVAL itself. The interpreter lives behind one mutex that is never
//! contended (scripts hold every shard); nothing a script can call takes it.
//!
//! # The sandbox
//!
//! Libraries: base (without print, setfenv, getfenv, newproxy, loadfile,
//! dofile, module, require), table, string, math (with Redis's
//! deterministic random), bit, cjson, cmsgpack, struct (`libs.rs`,
//! `cjson.rs`, `cmsgpack.rs`, `luastruct.rs`, with lauxlib's error texts
//! from `lauxlib.rs`). The globals and the library tables refuse writes
//! ("Attempt to modify a readonly table") and reading a missing global
//! ("Script attempted to access nonexistent global variable"): they are
//! proxies, so `rawget(_G, name)` finds nothing. Not provided: the Lua
//! debugger (SCRIPT DEBUG YES|SYNC).
//!
//! # The libraries, as a script sees them (the README points here)
//!
//! Scripts and functions get what Redis 7.0 gives them, with its error texts (position prefix
//! `user_script:N:` and the function's name as called, as lauxlib writes them): Lua 5.1's base
//! (without print, loadfile, dofile, setfenv, getfenv, newproxy, module, require), `string`,
//! `table`, `math` (Redis's deterministic `math.random`), `coroutine`, and
//! - `cmsgpack` (lua-cmsgpack 0.4.0, `src/scripting/cmsgpack.rs`): `pack(...)` (the arguments'
//!   encodings concatenated), `unpack(s)`, `unpack_one(s[, offset])`, `unpack_limit(s, n[, offset])`
//!   (the next offset, -1 at the end, before the values); integers in the smallest fix/8/16/32/64-bit
//!   form (non-negative ones unsigned), a float when it round-trips else a double, fixstr/str8/16/32,
//!   a table with keys exactly 1..n as an array else a map, tables 16 deep encoded as nil; decoding
//!   refuses bin/ext ("Bad data format in input."), truncated input "Missing bytes in input.";
//! - `struct` (struct.c 1.4, `src/scripting/luastruct.rs`): `pack`, `unpack`, `size` with
//!   `> < ! x b B h H l L T i[n] I[n] c[n] s f d` and spaces;
//! - `bit` (LuaBitOp 1.0.2: tobit, tohex, bnot, band, bor, bxor, lshift, rshift, arshift, rol, ror,
//!   bswap; numbers rounded half to even modulo 2^32 as its 2^52+2^51 trick does);
//! - `cjson` (lua-cjson 2.1.0, `src/scripting/cjson.rs`): `encode`, `decode`, `null`, and the options
//!   `encode_sparse_array`, `encode_max_depth`, `decode_max_depth`, `encode_number_precision`,
//!   `encode_keep_buffer`, `encode_invalid_numbers`, `decode_invalid_numbers`;
//! - `redis`: call, pcall, error_reply, status_reply, sha1hex, log (and LOG_*), setresp, set_repl
//!   (and REPL_*), replicate_commands, breakpoint and debug (no-ops outside the debugger),
//!   REDIS_VERSION, REDIS_VERSION_NUM.
//!
//! The globals and these tables are read-only ("Attempt to modify a readonly table"); reading a
//! missing global is "Script attempted to access nonexistent global variable". Compared with Redis:
//! one call returns at most 7997 values (mlua's stack; Redis: 7999 from `cmsgpack.unpack`, 7998
//! from `struct.unpack`); holding more than some 7,900 tables or strings at once (a decode nesting
//! thousands deep, possible only with cjson's depth options raised) fails with mlua's "out of Lua
//! stack" where Redis's C stack gives its own "excessive nesting" / "too many nested" /
//! "stack overflow" texts; and the globals and library tables are read-only proxies, so
//! `rawget(_G, name)`, `pairs(cjson)` and `cmsgpack.pack(bit)` (or `cmsgpack:pack()`) see them empty.
//! `tests/corpus/scripting_libs.txt` replays all of it against redis-server.

mod cjson;
mod cmsgpack;
pub mod convert;
mod functions;
pub(crate) mod lauxlib;
mod luastruct;
pub use functions::{FunctionInfo, RestorePolicy};
mod libs;
pub mod run;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, Variadic};

use crate::commands::{flags, CommandTable, Ctx};
use crate::exec::{call, Caller, Clock};
use crate::protocol::Reply;
use run::RUN;

/// The chunk name of the library's own Lua code: frames from it are
/// skipped when an error's position is taken (they are Redis's C in Redis).
const LIB_CHUNK: &str = "=redis";

/// The library's Lua part: `redis.call` and friends raise what the Rust
/// side returns as failed (an `{err=...}` table, which Lua's `error` raises
/// unchanged); the globals guard.
const PRELUDE: &str = r#"
local hidden = ...
local error, tostring, select, unpack, rawset, pairs, ipairs = error, tostring, select, unpack, rawset, pairs, ipairs
local raw_setmetatable, raw_getmetatable = setmetatable, getmetatable
-- Redis 7.0's pcall hands a caught error over as its message string (an
-- error table's `err`, a library error's text).
local raw_pcall, fix = pcall, hidden.fix
pcall = function(...) return fix(raw_pcall(...)) end
local handler = hidden.handler
local xpcall = xpcall
hidden.run = function(f, ...)
  local n, args = select('#', ...), {...}
  return xpcall(function() return f(unpack(args, 1, n)) end, handler)
end
-- Read-only tables (Redis's patched Lua): the globals and the libraries
-- are empty proxies whose writes fail, and whose metatables cannot be
-- replaced nor changed through getmetatable.
local readonly = raw_setmetatable({}, {__mode = 'k'})
local function deny() error("Attempt to modify a readonly table", 2) end
local function protect(t)
  local proxy = raw_setmetatable({}, {__index = t, __newindex = deny})
  readonly[proxy] = true
  return proxy
end
setmetatable = function(t, mt)
  if readonly[t] then error("Attempt to modify a readonly table", 0) end
  return raw_setmetatable(t, mt)
end
getmetatable = function(t)
  local mt = raw_getmetatable(t)
  if mt ~= nil and readonly[t] then return protect(mt) end
  return mt
end
-- Text only: precompiled chunks are refused (loadstring returns nil).
local raw_loadstring, raw_load, type, byte = loadstring, load, type, string.byte
loadstring = function(s, ...)
  if type(s) == 'string' and byte(s, 1) == 27 then return nil, 'binary chunks are not allowed' end
  return raw_loadstring(s, ...)
end
load = function(f, ...)
  if type(f) ~= 'function' then return raw_load(f, ...) end
  local first = true
  return raw_load(function()
    local piece = f()
    if first and type(piece) == 'string' and piece ~= '' then
      first = false
      if byte(piece, 1) == 27 then error('binary chunks are not allowed') end
    end
    return piece
  end, ...)
end
local G, all = _G, {}
for k, v in pairs(G) do all[k] = v end
for k in pairs(all) do rawset(G, k, nil) end
for _, name in ipairs({'redis', 'cjson', 'cmsgpack', 'struct', 'bit', 'string', 'math', 'table', 'coroutine'}) do
  if all[name] ~= nil then all[name] = protect(all[name]) end
end
hidden.redis = all.redis
all._G = G
local guard = {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = deny,
}
hidden.guard = guard
raw_setmetatable(all, guard)
raw_setmetatable(G, {__index = all, __newindex = deny})
readonly[G] = true
"#;

/// A script's shebang flags (`#!lua flags=...`).
#[derive(Clone, Copy, Default, Debug)]
pub struct ScriptFlags {
    /// A shebang line was present (not Redis's EVAL compatibility mode).
    pub shebang: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot_keys: bool,
}

struct Script {
    /// In the registry, not held as a reference: mlua's references live on
    /// one auxiliary Lua stack, which Lua 5.1 caps at 8000 slots (so that
    /// held functions would cap the cache at some 7,700 scripts).
    func: mlua::RegistryKey,
    flags: ScriptFlags,
}

struct Engine {
    lua: Lua,
    scripts: HashMap<String, Script>,
    functions: HashMap<String, functions::Func>,
    libraries: std::collections::BTreeMap<String, functions::Library>,
    /// The `redis` library itself (its `call` & co. are set per run).
    redis: Table,
    /// The metatable refusing missing globals and writes.
    guard: Table,
    runner: Function,
}

static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);

/// What INFO shows, kept outside the engine's mutex (INFO may run inside
/// a script).
pub struct Stats {
    /// Function libraries and functions loaded (FUNCTION STATS).
    pub libraries: AtomicUsize,
    pub functions: AtomicUsize,
    pub scripts: AtomicUsize,
    pub body_bytes: AtomicUsize,
    pub lua_bytes: AtomicUsize,
}

pub static STATS: Stats = Stats {
    libraries: AtomicUsize::new(0),
    functions: AtomicUsize::new(0),
    scripts: AtomicUsize::new(0),
    body_bytes: AtomicUsize::new(0),
    lua_bytes: AtomicUsize::new(0),
};

/// Redis 7.0 counts this much per cached script beyond its body (the
/// dict entry and the two objects); used_memory_scripts_eval's estimate.
const SCRIPT_OVERHEAD_BYTES: usize = 72;

/// Lowercase hex SHA-1 of `body` (Redis's `sha1hex`).
pub fn sha1hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    let mut guard = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(Engine::new().expect("the Lua interpreter starts"));
    }
    f(guard.as_mut().unwrap())
}

/// The field of an error table whose error errorstats counted already
/// (Redis's): the script's reply of it counts as a failed call only.
pub const COUNTED: &str = "ignore_error_stats_update";

/// An `{err=text, ignore_error_stats_update=true}` table: the error of a
/// command the script ran, counted where it arose.
fn counted_failure(lua: &Lua, text: &[u8]) -> mlua::Result<(Value, bool)> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(text)?)?;
    t.raw_set(COUNTED, true)?;
    Ok((Value::Table(t), true))
}

/// An `{err=...}` table for `msg` (Redis's `luaPushErrorBuff`: "-CODE msg"
/// keeps its code, anything else gets "ERR "), and the failed mark.
fn failure(lua: &Lua, msg: &[u8]) -> mlua::Result<(Value, bool)> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(error_text(msg))?)?;
    Ok((Value::Table(t), true))
}

/// A library error raised into the script (Redis raises the `err` text of
/// the error table): the handler keeps its text as it is, pcall returns it.
/// The flag: errorstats counted it already (`COUNTED`).
#[derive(Debug)]
struct ScriptError(Vec<u8>, bool);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl std::error::Error for ScriptError {}

/// What `redis.call` and the other raising functions return: the value,
/// or the failure's `err` text raised as a `ScriptError`.
fn raising(lua: &Lua, (v, failed): (Value, bool)) -> mlua::Result<Value> {
    if !failed {
        return Ok(v);
    }
    let text = match &v {
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            Value::String(s) => s.as_bytes().to_vec(),
            _ => b"ERR unknown error".to_vec(),
        },
        other => lua.coerce_string(other.clone())?.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
    };
    let counted = matches!(&v, Value::Table(t) if matches!(t.raw_get::<Value>(COUNTED), Ok(Value::Boolean(true))));
    Err(mlua::Error::external(ScriptError(text, counted)))
}

/// The `ScriptError` inside an mlua error, if it is one.
fn script_error(e: &mlua::Error) -> Option<&ScriptError> {
    match e {
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<ScriptError>(),
        mlua::Error::CallbackError { cause, .. } => script_error(cause),
        mlua::Error::WithContext { cause, .. } => script_error(cause),
        _ => None,
    }
}

/// An error value as the text Redis would show for it: a library error's
/// text, an error table's `err`, a string, a Rust error's message.
fn caught_text(v: &Value) -> mlua::Result<Option<Vec<u8>>> {
    Ok(match v {
        Value::Error(e) => Some(match script_error(e) {
            Some(se) => se.0.clone(),
            None => mlua_error_text(e).into_bytes(),
        }),
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        },
        _ => None,
    })
}

fn error_text(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 4);
    match msg.strip_prefix(b"-") {
        Some(rest) if rest.contains(&b' ') => out.extend_from_slice(rest),
        Some(rest) => {
            out.extend_from_slice(b"ERR ");
            out.extend_from_slice(rest);
        }
        None => {
            out.extend_from_slice(b"ERR ");
            out.extend_from_slice(msg);
        }
    }
    while out.last().is_some_and(|&c| c == b'\r' || c == b'\n') {
        out.pop();
    }
    out
}

/// The innermost message of an mlua error (a Rust callback's or the
/// hook's error arrives wrapped).
fn mlua_error_text(e: &mlua::Error) -> String {
    match e {
        // Without the traceback mlua appends to errors it hands back.
        mlua::Error::RuntimeError(m) => m.split("\nstack traceback:").next().unwrap_or(m).to_string(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::CallbackError { cause, .. } => mlua_error_text(cause),
        mlua::Error::WithContext { cause, .. } => mlua_error_text(cause),
        other => other.to_string(),
    }
}

impl Engine {
    fn new() -> mlua::Result<Engine> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default())?;
        let g = lua.globals();
        for name in ["print", "setfenv", "getfenv", "newproxy", "loadfile", "dofile", "module", "require"] {
            g.raw_set(name, Value::Nil)?;
        }
        libs::install(&lua, &g)?;
        let redis = lua.create_table()?;
        for (name, level) in [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)] {
            redis.set(name, level)?;
        }
        for (name, v) in [("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3)] {
            redis.set(name, v)?;
        }
        redis.set("REDIS_VERSION", crate::commands::info::REDIS_VERSION)?;
        redis.set("REDIS_VERSION_NUM", version_num(crate::commands::info::REDIS_VERSION))?;
        redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
        redis.set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
        redis.set("debug", lua.create_function(|_, _: Variadic<Value>| Ok(()))?)?;
        redis.set(
            "sha1hex",
            lua.create_function(|lua, a: Variadic<Value>| {
                if a.len() != 1 {
                    let r = failure(lua, b"wrong number of arguments")?;
                    return raising(lua, r);
                }
                // lua_tolstring: a string or a number; anything else hashes
                // as the empty string.
                let body = match &a[0] {
                    v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
                        lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec()).unwrap_or_default()
                    }
                    _ => Vec::new(),
                };
                lua.create_string(sha1hex(&body)).map(Value::String)
            })?,
        )?;
        let reply_table = |field: &'static str| {
            move |lua: &Lua, a: Variadic<Value>| -> mlua::Result<Value> {
                // (Wrong arguments: the error table is returned, not raised.)
                let (1, Some(Value::String(s))) = (a.len(), a.first()) else {
                    return Ok(failure(lua, b"wrong number or type of arguments")?.0);
                };
                let t = lua.create_table()?;
                if field == "err" {
                    // Redis's luaRedisErrorReplyCommand: a leading '-' is
                    // added when missing, then the code is parsed from it.
                    let mut msg = s.as_bytes().to_vec();
                    if msg.first() != Some(&b'-') {
                        msg.insert(0, b'-');
                    }
                    t.raw_set("err", lua.create_string(error_text(&msg))?)?;
                } else {
                    t.raw_set("ok", s.clone())?;
                }
                Ok(Value::Table(t))
            }
        };
        redis.set("error_reply", lua.create_function(reply_table("err"))?)?;
        redis.set("status_reply", lua.create_function(reply_table("ok"))?)?;
        redis.set(
            "log",
            lua.create_function(|lua, a: Variadic<Value>| {
                let r = log(lua, a)?;
                raising(lua, r)
            })?,
        )?;
        g.raw_set("redis", redis.clone())?;
        let hidden = lua.create_table()?;
        hidden.set("handler", lua.create_function(error_handler)?)?;
        hidden.set(
            "fix",
            lua.create_function(|lua, mut a: Variadic<Value>| {
                // A killed script is not caught: the kill goes on up.
                if RUN.kill.load(Ordering::Acquire) {
                    return Err(mlua::Error::runtime(run::KILLED));
                }
                if matches!(a.first(), Some(Value::Boolean(false))) {
                    if let Some(text) = a.get(1).map(caught_text).transpose()?.flatten() {
                        a[1] = Value::String(lua.create_string(text)?);
                    }
                }
                Ok(a)
            })?,
        )?;
        lua.load(PRELUDE).set_name(LIB_CHUNK).call::<()>(hidden.clone())?;
        let runner: Function = hidden.get("run")?;
        let guard: Table = hidden.get("guard")?;
        lua.set_hook(HookTriggers::new().every_nth_instruction(run::HOOK_INSTRUCTIONS), |_, _| RUN.hook())?;
        STATS.lua_bytes.store(lua.used_memory(), Ordering::Relaxed);
        Ok(Engine { lua, scripts: HashMap::new(), functions: HashMap::new(), libraries: Default::default(), redis, guard, runner })
    }

    /// Compiles `body` into the cache (if not there yet); its SHA-1.
    fn load(&mut self, body: &[u8]) -> Result<String, String> {
        let sha = sha1hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = parse_shebang(body)?;
        let func = self
            .lua
            .load(&body[shebang_len..])
            .set_name("@user_script")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function()
            .map_err(|e| format!("ERR Error compiling script (new function): {}", mlua_error_text(&e)))?;
        let func = self.lua.create_registry_value(func).map_err(|e| format!("ERR Error compiling script (new function): {}", mlua_error_text(&e)))?;
        self.scripts.insert(sha.clone(), Script { func, flags });
        STATS.scripts.store(self.scripts.len(), Ordering::Relaxed);
        STATS.body_bytes.fetch_add(body.len() + SCRIPT_OVERHEAD_BYTES, Ordering::Relaxed);
        STATS.lua_bytes.store(self.lua.used_memory(), Ordering::Relaxed);
        Ok(sha)
    }
}

/// Redis's `REDIS_VERSION_NUM`: 0x00MMmmpp.
fn version_num(v: &str) -> i64 {
    let mut parts = v.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a << 16) | (b << 8) | c
}

/// `redis.log(level, ...)`.
fn log(lua: &Lua, a: Variadic<Value>) -> mlua::Result<(Value, bool)> {
    if a.len() < 2 {
        return failure(lua, b"redis.log() requires two arguments or more.");
    }
    let Some(level) = lauxlib::to_number(lua, &a, 0)?.map(lauxlib::to_i64) else {
        return failure(lua, b"First argument must be a number (log level).");
    };
    let level = match level {
        0 => crate::config::LogLevel::Debug,
        1 => crate::config::LogLevel::Verbose,
        2 => crate::config::LogLevel::Notice,
        3 => crate::config::LogLevel::Warning,
        _ => return failure(lua, b"Invalid debug level."),
    };
    let mut line = Vec::new();
    for (i, v) in a.iter().skip(1).enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        if let Some(s) = lua.coerce_string(v.clone())? {
            line.extend_from_slice(&s.as_bytes());
        }
    }
    crate::log::log(level, &String::from_utf8_lossy(&line));
    Ok((Value::Nil, false))
}

/// The message handler of every script run (Redis's
/// `__redis__err__handler`): the error as an `{err=...}` table ("ERR "
/// before a string error), with the position of the script's frame that
/// raised it (C frames and the library's own skipped).
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match err {
        Value::Table(t) => t,
        other => {
            let msg: Vec<u8> = match &other {
                Value::Error(e) => match script_error(e) {
                    Some(se) => se.0.clone(),
                    None => [&b"ERR "[..], mlua_error_text(e).as_bytes()].concat(),
                },
                v => {
                    let text = match lua.coerce_string(v.clone())? {
                        Some(s) => s.as_bytes().to_vec(),
                        None => v.type_name().as_bytes().to_vec(),
                    };
                    [&b"ERR "[..], &text].concat()
                }
            };
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(&msg)?)?;
            if matches!(&other, Value::Error(e) if script_error(e).is_some_and(|se| se.1)) {
                t.raw_set(COUNTED, true)?;
            }
            t
        }
    };
    for level in 1..64 {
        let Some((what, source, line)) = lua.inspect_stack(level, |d| {
            let s = d.source();
            (s.what, s.source.map(|c| c.into_owned()), d.current_line())
        }) else {
            break;
        };
        if what == "C" || source.as_deref() == Some(LIB_CHUNK) {
            continue;
        }
        if let Some(source) = source {
            t.raw_set("source", source)?;
        }
        if let Some(line) = line {
            t.raw_set("line", line)?;
        }
        break;
    }
    Ok(t)
}

/// Redis's `evalExtractShebangFlags`: the flags of a `#!lua ...` first
/// line and its length (the newline stays in the body, so line numbers
/// are kept).
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    let mut flags = ScriptFlags::default();
    if !body.starts_with(b"#!") {
        return Ok((flags, 0));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some(engine) = parts.first() else {
        return Err("ERR Invalid engine in script shebang".into());
    };
    if *engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {}", engine));
    }
    flags.shebang = true;
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {}", part));
        };
        for f in list.split(',') {
            match f {
                "no-writes" => flags.no_writes = true,
                "allow-oom" => flags.allow_oom = true,
                "allow-stale" => flags.allow_stale = true,
                "no-cluster" => flags.no_cluster = true,
                "allow-cross-slot-keys" => flags.allow_cross_slot_keys = true,
                // `flags=` alone: no flags.
                "" if list.is_empty() => {}
                other => return Err(format!("ERR Unexpected flag in script shebang: {}", other)),
            }
        }
    }
    Ok((flags, end))
}

/// SCRIPT LOAD.
pub fn load(body: &[u8]) -> Result<String, String> {
    with_engine(|e| e.load(body))
}

/// SCRIPT EXISTS of one SHA-1 (any case).
pub fn exists(sha: &[u8]) -> bool {
    let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
    with_engine(|e| e.scripts.contains_key(&sha))
}

/// SCRIPT FLUSH: a new interpreter, an empty cache (Redis's scriptingReset).
pub fn flush() {
    let mut guard = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let libraries: Vec<(String, Vec<u8>)> = guard.as_ref().map(|e| e.libraries.iter().map(|(n, l)| (n.clone(), l.code.clone())).collect()).unwrap_or_default();
    // The old interpreter is freed here, after the new one exists (ASYNC
    // in Redis frees it on a background thread; it is small). Functions
    // are not scripts: their libraries are loaded into the new one.
    *guard = Engine::new().ok();
    if let Some(e) = guard.as_mut() {
        e.reload_libraries(libraries);
    }
    STATS.scripts.store(0, Ordering::Relaxed);
    STATS.body_bytes.store(0, Ordering::Relaxed);
}

/// FUNCTION LOAD [REPLACE].
pub fn function_load(code: &[u8], replace: bool) -> Result<String, String> {
    with_engine(|e| e.load_library(code, replace))
}

/// FUNCTION DELETE: whether the library existed.
pub fn function_delete(name: &[u8]) -> bool {
    let name = String::from_utf8_lossy(name).into_owned();
    with_engine(|e| e.unlink(&name).is_some())
}

/// FUNCTION FLUSH.
pub fn function_flush() {
    with_engine(|e| e.clear_libraries())
}

/// FUNCTION STATS (Redis's functionStatsCommand): the function running
/// now, if any, and the engine's counts. Read from `RUN` and `STATS`, not
/// the engine, so that it answers while a function is busy.
pub fn function_stats(r: &mut Reply) {
    r.map(2);
    r.bulk(b"running_script");
    match RUN.running_function() {
        None => r.null(),
        Some((name, argv, duration_ms)) => {
            r.map(3);
            r.bulk(b"name");
            r.bulk(name.as_bytes());
            r.bulk(b"command");
            r.array(argv.len());
            for a in &argv {
                r.bulk(a);
            }
            r.bulk(b"duration_ms");
            r.int(duration_ms);
        }
    }
    r.bulk(b"engines");
    r.map(1);
    r.bulk(b"LUA");
    r.map(2);
    r.bulk(b"libraries_count");
    r.int(STATS.libraries.load(Ordering::Relaxed) as i64);
    r.bulk(b"functions_count");
    r.int(STATS.functions.load(Ordering::Relaxed) as i64);
}

/// FUNCTION RESTORE of the libraries' codes (and the libraries an RDB or
/// an AOF preamble carries, `RestorePolicy::Append`).
pub fn function_restore(codes: &[Vec<u8>], policy: RestorePolicy) -> Result<(), String> {
    if codes.is_empty() && policy != RestorePolicy::Flush {
        return Ok(());
    }
    with_engine(|e| e.restore_libraries(codes, policy))
}

/// Every library's code, in name order (RDB, AOF rewrite, FUNCTION DUMP).
/// Also called in a snapshot child: the engine's lock is then free, since
/// the parent forks with every shard held (no script, no FUNCTION command
/// runs) and nothing else takes it.
pub fn library_codes() -> Vec<Vec<u8>> {
    let guard = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().map(|e| e.libraries.values().map(|l| l.code.clone()).collect()).unwrap_or_default()
}

/// One library as FUNCTION LIST shows it: name, code, functions with flags.
pub struct LibraryInfo {
    pub name: String,
    pub code: Vec<u8>,
    pub functions: Vec<FunctionInfo>,
}

/// The libraries (in name order).
pub fn function_list() -> Vec<LibraryInfo> {
    with_engine(|e| e.libraries.iter().map(|(n, l)| LibraryInfo { name: n.clone(), code: l.code.clone(), functions: l.functions.clone() }).collect())
}

/// The flags a script-running command has for the gates that run before
/// it (Redis's evalGetCommandFlags / fcallGetCommandFlags): a script that
/// declares flags (a shebang; every function) is a write command unless
/// `no-writes`, deny-oom unless `allow-oom` or `no-writes`, and runs on a
/// stale replica only with `allow-stale` (scriptFlagsToCmdFlags). Without
/// declared flags, or when the script is unknown, the command's own flags.
/// Called only while a gate is closed (MISCONF, NOREPLICAS, READONLY,
/// MASTERDOWN): it may take the engine's lock.
pub fn command_flags(name: &str, cmd_flags: u32, args: &[&[u8]]) -> u32 {
    let Some(&target) = args.get(1) else {
        return cmd_flags;
    };
    let declared = match name {
        "eval" | "eval_ro" => parse_shebang(target).ok().map(|(f, _)| f),
        "evalsha" | "evalsha_ro" if target.len() == 40 => {
            let sha = String::from_utf8_lossy(target).to_ascii_lowercase();
            with_engine(|e| e.scripts.get(&sha).map(|s| s.flags))
        }
        "fcall" | "fcall_ro" => {
            let name = String::from_utf8_lossy(target).to_ascii_lowercase();
            with_engine(|e| e.functions.get(&name).map(|f| f.flags))
        }
        _ => None,
    };
    match declared {
        Some(f) if f.shebang => {
            let mut out = cmd_flags & !(flags::STALE | flags::DENYOOM | flags::WRITE | flags::MAY_REPLICATE);
            if !f.allow_oom && !f.no_writes {
                out |= flags::DENYOOM;
            }
            if !f.no_writes {
                out |= flags::WRITE;
            }
            if f.allow_stale {
                out |= flags::STALE;
            }
            out
        }
        _ => cmd_flags,
    }
}

/// Redis's scriptPrepareForRun checks of the replication state: a stale
/// replica (link down, replica-serve-stale-data no) runs only scripts
/// flagged `allow-stale`. (Reached inside MULTI; outside, the dispatch
/// gates refuse such a script first, from `command_flags`.)
fn refuse_stale_script(ctx: &Ctx, script_flags: &ScriptFlags) -> Option<&'static str> {
    if obeyed(ctx) {
        return None;
    }
    let gate = ctx.server.repl.gate();
    if gate & crate::replication::GATE_STALE == 0 {
        return None;
    }
    if !script_flags.shebang {
        return Some(crate::replication::MASTERDOWN);
    }
    (!script_flags.allow_stale)
        .then_some("MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script.")
}

/// Redis 7.0's scriptVerifyWriteCommandAllow checks of a write command
/// against the server's state (as error replies, "-CODE ..."): refused on
/// a read-only replica, while writes to disk fail (MISCONF), and without
/// enough good replicas (NOREPLICAS).
fn refuse_write_in_script(ctx: &Ctx, gate: u8) -> Option<Vec<u8>> {
    let reply = |text: &str| Some([b"-", text.as_bytes()].concat());
    if gate & crate::replication::GATE_READONLY != 0 {
        return reply(crate::replication::READONLY);
    }
    if ctx.server.persistence.writes_blocked.load(Ordering::Relaxed) {
        return reply(crate::persistence::snapshot::MISCONF);
    }
    if let Some(errno) = ctx.server.aof.write_error() {
        return reply(&format!("MISCONF Errors writing to the AOF file: {}", crate::persistence::aof_file::strerror(errno)));
    }
    if gate & crate::replication::GATE_NOREPLICAS != 0 {
        return reply(crate::replication::NOREPLICAS);
    }
    None
}

/// Whether the script runs for the AOF loader (`aof_file::replay_dir`: no
/// client, its shards loading): as Redis's `mustObeyClient` (the AOF
/// client), it is not refused for the server's state (a read-only or
/// stale replica, MISCONF, NOREPLICAS): the file holds what ran before.
fn obeyed(ctx: &Ctx) -> bool {
    ctx.client.is_none() && ctx.shards.get(ctx.home).is_loading()
}

/// Whether `ctx` is a command a script runs (`redis.call`: Redis's
/// CLIENT_SCRIPT): the script's commands run without a client while a
/// script runs, and nothing else runs meanwhile.
pub fn in_script(ctx: &Ctx) -> bool {
    ctx.client.is_none() && RUN.running.load(Ordering::Relaxed)
}

/// Which script EVAL-family runs.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Body(&'a [u8]),
    Sha(&'a [u8]),
    /// FCALL / FCALL_RO of a function.
    Function(&'a [u8]),
}

/// Runs a script for EVAL / EVALSHA / EVAL_RO / EVALSHA_RO; `ro`: the
/// `_RO` variants. `args`: the command's arguments (name, script, numkeys, ...).
pub fn eval(ctx: &mut Ctx, args: &[&[u8]], source: Source, ro: bool, r: &mut Reply) {
    // FCALL looks its function up before it reads numkeys.
    if let Source::Function(name) = source {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if !with_engine(|e| e.functions.contains_key(&name)) {
            return r.error("ERR Function not found");
        }
    }
    // EVALSHA refuses a SHA that is not 40 characters long before it reads
    // numkeys (evalShaCommand); one of 40 is looked up after.
    if matches!(source, Source::Sha(sha) if sha.len() != 40) {
        return r.error("NOSCRIPT No matching script. Please use EVAL.");
    }
    let Some(numkeys) = crate::commands::parse_i64(args[2]) else {
        return r.error(if matches!(source, Source::Function(_)) { "ERR Bad number of keys provided" } else { crate::commands::err::NOT_INTEGER });
    };
    if numkeys > (args.len() - 3) as i64 {
        return r.error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return r.error("ERR Number of keys can't be negative");
    }
    let (keys, argv) = args[3..].split_at(numkeys as usize);
    let mut guard = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(Engine::new().expect("the Lua interpreter starts"));
    }
    let engine = guard.as_mut().unwrap();
    let sha = match source {
        Source::Body(body) => match engine.load(body) {
            Ok(sha) => sha,
            Err(e) => return r.error(&e),
        },
        Source::Sha(sha) => {
            let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
            if sha.len() != 40 || !engine.scripts.contains_key(&sha) {
                return r.error("NOSCRIPT No matching script. Please use EVAL.");
            }
            sha
        }
        Source::Function(name) => {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            if !engine.functions.contains_key(&name) {
                return r.error("ERR Function not found");
            }
            name
        }
    };
    let is_function = matches!(source, Source::Function(_));
    let (func, script_flags) = match is_function {
        true => (engine.functions[&sha].callback.clone(), engine.functions[&sha].flags),
        false => match engine.lua.registry_value::<Function>(&engine.scripts[&sha].func) {
            Ok(f) => (f, engine.scripts[&sha].flags),
            Err(e) => return r.error(&format!("ERR {}", mlua_error_text(&e))),
        },
    };
    if let Some(msg) = refuse_stale_script(ctx, &script_flags) {
        return r.error(msg);
    }
    if script_flags.shebang && !script_flags.no_writes && ro {
        return r.error("ERR Can not execute a script with write flag using *_ro command.");
    }
    // MONITOR: the EVAL before the commands it runs (Redis 7.0 feeds it
    // when the script starts; the command itself is skip-monitor).
    if ctx.server.monitors.load(Ordering::Relaxed) > 0 {
        let (addr, db) = match ctx.client.as_deref() {
            Some(c) => (c.addr.clone().into_bytes(), ctx.db),
            None => (b"lua".to_vec(), ctx.db),
        };
        let mut line = std::mem::take(&mut ctx.nested_monitor);
        crate::exec::format_monitor_line(&mut line, crate::util::unix_us() as u64, db, &addr, args);
        ctx.nested_monitor = line;
    }
    let lua = engine.lua.clone();
    let set_globals = || -> mlua::Result<Option<(Table, Table)>> {
        let g = lua.globals();
        let to_table = |items: &[&[u8]]| -> mlua::Result<Table> {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, a) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(a)?)?;
            }
            Ok(t)
        };
        let (k, a) = (to_table(keys)?, to_table(argv)?);
        if is_function {
            return Ok(Some((k, a)));
        }
        g.raw_set("KEYS", k)?;
        g.raw_set("ARGV", a)?;
        Ok(None)
    };
    let call_args = match set_globals() {
        Ok(a) => a,
        Err(e) => return r.error(&format!("ERR {}", mlua_error_text(&e))),
    };
    let threshold = ctx.config().others.get("busy-reply-threshold").and_then(|v| v.parse::<i64>().ok()).unwrap_or(5000);
    // A function is named as registered (its key is lowercase) in errors
    // and in FUNCTION STATS, which also shows the command.
    let sha = match is_function {
        true => engine
            .libraries
            .get(&engine.functions[&sha].library)
            .and_then(|l| l.functions.iter().find(|f| f.name.eq_ignore_ascii_case(&sha)))
            .map_or(sha, |f| f.name.clone()),
        false => sha,
    };
    RUN.start(threshold, is_function.then(|| (sha.clone(), args.iter().map(|a| a.to_vec()).collect())));
    // Redis's script_oom: the memory state when the script starts decides
    // whether its deny-oom commands are refused (until it has written).
    let limit = ctx.server.memory.limit();
    let oom = limit != 0 && ctx.server.memory.used() > limit;
    if oom && script_flags.shebang && !script_flags.allow_oom && !script_flags.no_writes {
        RUN.end();
        return r.error("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'");
    }
    let read_only = ro || script_flags.no_writes;
    let caller_id = ctx.client.as_deref().map_or(0, |c| c.id);
    // Redis's call(): a read-only command run by a script makes the caller
    // (when it tracks, not in BCAST mode) remember the keys the script
    // declared, once; EVAL_RO and friends themselves remember nothing.
    let caller_tracks = ctx.client.as_deref().is_some_and(|c| c.tracking.remembers_reads());
    let track_keys: Vec<Vec<u8>> = if caller_tracks { keys.iter().map(|k| k.to_vec()).collect() } else { Vec::new() };
    let acl_user = ctx.client.as_deref().filter(|c| !c.acl.unrestricted).and_then(|c| c.acl.user.clone());
    let state = RefCell::new(CallState {
        acl_user,
        ctx,
        resp: 2,
        db: 0,
        read_only,
        oom: oom && !script_flags.allow_oom,
        wrote: false,
        repl_aof: true,
        caller_id,
        track_keys,
        buf: Vec::new(),
        clock: Clock::new(),
        line: Vec::new(),
    });
    {
        let mut s = state.borrow_mut();
        s.db = s.ctx.db;
    }
    let (redis, runner) = (engine.redis.clone(), engine.runner.clone());
    let outcome = lua.scope(|scope| {
        let call_raising = scope.create_function(|lua, a: Variadic<Value>| {
            let r = state.borrow_mut().call(lua, &a)?;
            raising(lua, r)
        })?;
        redis.raw_set("call", call_raising)?;
        redis.raw_set("pcall", scope.create_function(|lua, a: Variadic<Value>| Ok(state.borrow_mut().call(lua, &a)?.0))?)?;
        let setresp = scope.create_function(|lua, a: Variadic<Value>| {
            let r = state.borrow_mut().setresp(lua, &a)?;
            raising(lua, r)
        })?;
        redis.raw_set("setresp", setresp)?;
        let set_repl = scope.create_function(|lua, a: Variadic<Value>| {
            let r = state.borrow_mut().set_repl(lua, &a)?;
            raising(lua, r)
        })?;
        redis.raw_set("set_repl", set_repl)?;
        let acl_check_cmd = scope.create_function(|lua, a: Variadic<Value>| {
            let r = state.borrow_mut().acl_check_cmd(lua, &a)?;
            raising(lua, r)
        })?;
        redis.raw_set("acl_check_cmd", acl_check_cmd)?;
        match call_args {
            Some((k, a)) => runner.call::<(bool, Value)>((func, k, a)),
            None => runner.call::<(bool, Value)>(func),
        }
    });
    let killed = RUN.kill.load(Ordering::Acquire);
    RUN.end();
    let state = state.into_inner();
    let (ctx, script_resp) = (state.ctx, state.resp);
    match outcome {
        Ok((true, v)) => convert::lua_to_reply(&v, r, script_resp),
        Ok((false, Value::Table(t))) => {
            let msg: Vec<u8> = match t.raw_get::<Value>("err") {
                Ok(Value::String(s)) => s.as_bytes().to_vec(),
                _ => b"ERR unknown error".to_vec(),
            };
            let msg = if killed { format!("ERR {}", run::KILLED).into_bytes() } else { msg };
            let mut text = msg;
            let source = t.raw_get::<Option<mlua::LuaString>>("source").ok().flatten();
            let line = t.raw_get::<Value>("line").ok().and_then(|v| lua.coerce_string(v).ok().flatten());
            if let (Some(source), Some(line)) = (source, line) {
                text.extend_from_slice(b" script: ");
                text.extend_from_slice(sha.as_bytes());
                text.extend_from_slice(b", on ");
                text.extend_from_slice(&source.as_bytes());
                text.push(b':');
                text.extend_from_slice(&line.as_bytes());
                text.push(b'.');
            }
            r.error_bytes(&text);
            if !killed && matches!(t.raw_get::<Value>(COUNTED), Ok(Value::Boolean(true))) {
                r.error_stats_counted = true;
            }
        }
        Ok((false, other)) => {
            let msg = lua.coerce_string(other).ok().flatten().map(|s| s.as_bytes().to_vec()).unwrap_or_else(|| b"execution failure".to_vec());
            let mut text = format!("ERR Error running script {}, ", sha).into_bytes();
            text.extend_from_slice(&msg[..msg.len().min(100)]);
            r.error_bytes(&text);
        }
        Err(e) => r.error(&format!("ERR Error running script {}, {:.100}", sha, mlua_error_text(&e))),
    }
    STATS.lua_bytes.store(lua.used_memory(), Ordering::Relaxed);
    drop(guard);
    // The script's writes, as one unit (a script inside EXEC leaves them
    // to the EXEC's unit).
    if ctx.propagating() {
        if !ctx.in_multi {
            crate::exec::propagate::exec_end(ctx);
        }
        ctx.propagate = crate::exec::propagate::Propagate::Many(Vec::new());
    }
}

/// What `redis.call` needs while one script runs.
struct CallState<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    /// `redis.setresp`: the protocol the script's commands reply in.
    resp: u8,
    /// The script's selected database (SELECT inside it).
    db: usize,
    read_only: bool,
    /// Out of memory when the script started: deny-oom commands are
    /// refused while it has not written.
    oom: bool,
    wrote: bool,
    /// `redis.set_repl`: whether writes are propagated (AOF).
    repl_aof: bool,
    caller_id: u64,
    /// The caller's ACL user when it may not run everything: the script's
    /// commands are checked against it (Redis's scriptVerifyACL).
    acl_user: Option<std::sync::Arc<crate::acl::User>>,
    /// The declared keys still to remember for the caller's tracking at
    /// the script's first read-only command (empty: nothing to do).
    track_keys: Vec<Vec<u8>>,
    buf: Vec<u8>,
    clock: Clock,
    line: Vec<u8>,
}

/// A redis lib call's reply: the value and whether it is a failure.
type LibReply = (Value, bool);

/// The arguments of a redis lib call as bytes; Err: the failure to return.
fn lib_args(lua: &Lua, a: &[Value]) -> mlua::Result<Result<Vec<Vec<u8>>, LibReply>> {
    if a.is_empty() {
        return failure(lua, b"Please specify at least one argument for this redis lib call").map(Err);
    }
    let mut owned: Vec<Vec<u8>> = Vec::with_capacity(a.len());
    for v in a {
        let mut arg = Vec::new();
        if !convert::lua_to_arg(v, &mut arg) {
            return failure(lua, b"Lua redis lib command arguments must be strings or integers").map(Err);
        }
        owned.push(arg);
    }
    Ok(Ok(owned))
}

impl CallState<'_, '_> {
    /// `redis.call` / `redis.pcall`: (the reply as Lua, failed).
    fn call(&mut self, lua: &Lua, a: &[Value]) -> mlua::Result<(Value, bool)> {
        let owned = match lib_args(lua, a)? {
            Ok(owned) => owned,
            Err(e) => return Ok(e),
        };
        let args: Vec<&[u8]> = owned.iter().map(|v| &v[..]).collect();
        let table = CommandTable::get();
        let Some(mut id) = table.lookup(args[0]) else {
            return failure(lua, b"Unknown Redis command called from script");
        };
        if table.is_container(id) && args.len() >= 2 {
            match table.lookup_sub(table.specs[id].name, args[1]) {
                Some(sub) => id = sub,
                None => return failure(lua, b"Unknown Redis command called from script"),
            }
        }
        let spec = &table.specs[id];
        let argc = args.len() as i32;
        if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
            return failure(lua, b"Wrong number of args calling Redis command from script");
        }
        if spec.flags & flags::NOSCRIPT != 0 {
            return self.rejected(lua, id, b"This Redis command is not allowed from script");
        }
        let obeyed = obeyed(self.ctx);
        let gate = if obeyed { 0 } else { self.ctx.server.repl.gate() };
        if gate & crate::replication::GATE_STALE != 0 && spec.flags & flags::STALE == 0 {
            return self.rejected(lua, id, b"Can not execute the command on a stale replica");
        }
        if let Some(denied) = self.acl_user.as_ref().and_then(|u| u.check(id, &args).err()) {
            let user = self.acl_user.as_ref().unwrap().name.clone();
            let object = denied.pos().map_or(spec.name.as_bytes(), |p| args[p]);
            crate::commands::acl::log_denied(self.ctx, denied.reason(), crate::acl::Context::Lua, object, &user);
            return self.rejected(lua, id, denied.script_reply().as_bytes());
        }
        // As Redis's scriptVerifyWriteCommandAllow: a MAY_REPLICATE command
        // (PUBLISH, SPUBLISH, PFCOUNT) counts as a write here too.
        if self.read_only && crate::network::multi::command_may_replicate(spec, &args, false) {
            return self.rejected(lua, id, b"Write commands are not allowed from read-only scripts.");
        }
        if spec.is_write() && !obeyed {
            if let Some(msg) = refuse_write_in_script(self.ctx, gate) {
                return self.rejected(lua, id, &msg);
            }
        }
        if self.oom && !self.wrote && spec.flags & flags::DENYOOM != 0 {
            return self.rejected(lua, id, b"-OOM command not allowed when used memory > 'maxmemory'.");
        }
        if spec.is_write() {
            self.wrote = true;
            RUN.wrote.store(true, Ordering::Release);
        }
        self.buf.clear();
        let mut r = Reply::new(&mut self.buf, self.resp);
        {
            let ctx = &mut *self.ctx;
            let mut sub = Ctx::new(ctx.shards, ctx.server, ctx.home, self.db, self.resp, ctx.now_ms, None);
            sub.in_multi = true;
            let caller = Caller { addr: b"lua", name: b"", client_id: self.caller_id, track: false, shard: ctx.home };
            self.clock.tick();
            if self.repl_aof {
                call(&mut sub, &mut self.clock, id, &args, &mut r, &caller, &mut self.line);
            } else {
                // REPL_NONE: run it, and drop what it would propagate.
                let ops_before = crate::exec::propagate::exec_ops_len(&sub);
                call(&mut sub, &mut self.clock, id, &args, &mut r, &caller, &mut self.line);
                crate::exec::propagate::exec_ops_truncate(&mut sub, ops_before);
            }
            if !self.line.is_empty() {
                ctx.nested_monitor.extend_from_slice(&self.line);
            }
            if spec.flags & flags::READONLY != 0 && !self.track_keys.is_empty() {
                let reader = crate::messaging::tracking::Reader { id: self.caller_id, shard: ctx.home };
                for key in std::mem::take(&mut self.track_keys) {
                    crate::messaging::tracking::remember_key(ctx, &key, reader);
                }
            }
        }
        if spec.name == "select" && self.buf.starts_with(b"+OK") {
            self.db = crate::commands::parse_i64(args[1]).unwrap_or(0) as usize;
        }
        let failed = self.buf.first() == Some(&b'-');
        if failed {
            // Counted by call() already.
            let text = error_text(&self.buf[..self.buf.len() - 2]);
            return counted_failure(lua, &text);
        }
        let mut pos = 0;
        Ok((convert::reply_to_lua(lua, &self.buf, &mut pos)?, false))
    }

    /// A command the script may not run now (Redis's scriptCall checks):
    /// counted here as the command's rejected call and in errorstats, and
    /// so flagged that the script's error reply does not count it again.
    fn rejected(&mut self, lua: &Lua, id: usize, msg: &[u8]) -> mlua::Result<(Value, bool)> {
        let text = error_text(msg);
        let st = self.ctx.shards.get_mut(self.ctx.home);
        st.stats.record_rejected(Some(id));
        st.stats.record_error(crate::protocol::reply::ErrorKind::from_error(&text).as_str());
        counted_failure(lua, &text)
    }

    /// `redis.acl_check_cmd`: whether the caller's user may run the
    /// command (true) or not (false); an unknown command is an error.
    fn acl_check_cmd(&mut self, lua: &Lua, a: &[Value]) -> mlua::Result<(Value, bool)> {
        let owned = match lib_args(lua, a)? {
            Ok(owned) => owned,
            Err(e) => return Ok(e),
        };
        let args: Vec<&[u8]> = owned.iter().map(|v| &v[..]).collect();
        let table = CommandTable::get();
        let mut id = table.lookup(args[0]);
        if let Some(c) = id.filter(|&c| table.is_container(c)) {
            id = args.get(1).and_then(|sub| table.lookup_sub(table.specs[c].name, sub));
        }
        let Some(id) = id else {
            return failure(lua, b"Invalid command passed to redis.acl_check_cmd()");
        };
        let allowed = self.acl_user.as_ref().is_none_or(|u| u.check(id, &args).is_ok());
        Ok((Value::Boolean(allowed), false))
    }

    fn setresp(&mut self, lua: &Lua, a: &[Value]) -> mlua::Result<(Value, bool)> {
        if a.len() != 1 {
            return failure(lua, b"redis.setresp() requires one argument.");
        }
        // (int)lua_tonumber: numeric strings too, fractions truncated.
        match lauxlib::to_number(lua, a, 0)?.map(lauxlib::to_i64) {
            Some(v @ (2 | 3)) => self.resp = v as u8,
            _ => return failure(lua, b"RESP version must be 2 or 3."),
        }
        Ok((Value::Nil, false))
    }

    fn set_repl(&mut self, lua: &Lua, a: &[Value]) -> mlua::Result<(Value, bool)> {
        if a.len() != 1 {
            return failure(lua, b"redis.set_repl() requires one argument.");
        }
        let v = match &a[0] {
            Value::Integer(n) => *n,
            Value::Number(n) => *n as i64,
            _ => return failure(lua, b"Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."),
        };
        if !(0..=3).contains(&v) {
            return failure(lua, b"Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.");
        }
        self.repl_aof = v & 1 != 0;
        Ok((Value::Nil, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_flags_and_errors_are_redis_texts() {
        assert_eq!(parse_shebang(b"return 1").unwrap().1, 0);
        let (f, len) = parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(f.shebang && f.no_writes && f.allow_oom && !f.allow_stale);
        assert_eq!(len, 31);
        assert_eq!(parse_shebang(b"#!lua flags=foo\nx").unwrap_err(), "ERR Unexpected flag in script shebang: foo");
        assert_eq!(parse_shebang(b"#!lua name=x\nx").unwrap_err(), "ERR Unknown lua shebang option: name=x");
        assert_eq!(parse_shebang(b"#!luax\nx").unwrap_err(), "ERR Unexpected engine in script shebang: #!luax");
        assert_eq!(parse_shebang(b"#!lua").unwrap_err(), "ERR Invalid script shebang");
    }

    #[test]
    fn error_texts_get_a_code() {
        assert_eq!(error_text(b"-WRONGTYPE Operation"), b"WRONGTYPE Operation");
        assert_eq!(error_text(b"-boom"), b"ERR boom");
        assert_eq!(error_text(b"boom\r\n"), b"ERR boom");
    }

    #[test]
    fn version_num_packs_three_parts() {
        assert_eq!(version_num("7.0.15"), 0x07000f);
    }
}
