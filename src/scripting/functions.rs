//! Redis 7.0 functions (functions.c, function_lua.c) on the scripting
//! engine: FUNCTION LOAD runs a library's code with `redis.register_function`
//! in its globals, in an environment of its own (missing globals refused as
//! in scripts); FCALL runs a registered callback with (KEYS, ARGV) through
//! the same run as EVAL. Libraries are kept as their code: the RDB (and an
//! AOF's RDB preamble) carries each as an `RDB_OPCODE_FUNCTION2` record, an
//! AOF base in commands as a FUNCTION LOAD, FUNCTION DUMP as the records
//! with the DUMP footer (`persistence::payload`).

use std::cell::RefCell;

use mlua::{Function, Lua, Table, Value, Variadic};

use super::{mlua_error_text, script_error, Engine, ScriptError, ScriptFlags};

/// A registered function (the engine's map is keyed by the lowercase
/// name: Redis's function dict compares names without case).
pub struct Func {
    pub callback: Function,
    pub flags: ScriptFlags,
    pub library: String,
}

/// A loaded library: its code (to list it, and to load it again into a
/// new interpreter after SCRIPT FLUSH) and its functions, in order.
pub struct Library {
    pub code: Vec<u8>,
    pub functions: Vec<FunctionInfo>,
}

/// A function as FUNCTION LIST shows it.
#[derive(Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub flags: ScriptFlags,
    pub description: Option<Vec<u8>>,
}

/// What `redis.register_function` registered.
struct Registered {
    info: FunctionInfo,
    callback: Function,
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

const NAME_ERROR: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

fn raise(text: &str) -> mlua::Error {
    mlua::Error::external(ScriptError(text.as_bytes().to_vec(), false))
}

fn parse_flags(v: Option<Value>) -> mlua::Result<ScriptFlags> {
    let mut flags = ScriptFlags { shebang: true, ..Default::default() };
    let Some(Value::Table(t)) = v else {
        return match v {
            None | Some(Value::Nil) => Ok(flags),
            _ => Err(raise("ERR flags argument to redis.register_function must be a table representing function flags")),
        };
    };
    for item in t.sequence_values::<Value>() {
        let Value::String(s) = item? else {
            return Err(raise("ERR unknown flag given"));
        };
        match &*s.as_bytes() {
            b"no-writes" => flags.no_writes = true,
            b"allow-oom" => flags.allow_oom = true,
            b"allow-stale" => flags.allow_stale = true,
            b"no-cluster" => flags.no_cluster = true,
            b"allow-cross-slot-keys" => flags.allow_cross_slot_keys = true,
            _ => return Err(raise("ERR unknown flag given")),
        }
    }
    Ok(flags)
}

/// A string argument as Lua's `lua_isstring` takes it (a number too).
fn lua_string(v: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    super::convert::lua_to_arg(v, &mut out).then_some(out)
}

/// `redis.register_function`'s arguments (function_lua.c's
/// luaRegisterFunction): (name, callback) or a table of named arguments.
fn registration(a: Variadic<Value>) -> mlua::Result<Registered> {
    let (name, callback, flags, description) = match a.len() {
        1 => {
            let Some(Value::Table(t)) = a.first() else {
                return Err(raise(
                    "ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
                ));
            };
            let (mut name, mut callback, mut flags, mut description) = (None, None, None, None);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Some(k) = lua_string(&k) else {
                    return Err(raise("ERR named argument key given to redis.register_function is not a string"));
                };
                match &k[..] {
                    b"function_name" => {
                        name = Some(lua_string(&v).ok_or_else(|| raise("ERR function_name argument given to redis.register_function must be a string"))?)
                    }
                    b"description" => {
                        description = Some(lua_string(&v).ok_or_else(|| raise("ERR description argument given to redis.register_function must be a string"))?)
                    }
                    b"callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => return Err(raise("ERR callback argument given to redis.register_function must be a function")),
                    },
                    b"flags" => flags = Some(v),
                    _ => return Err(raise("ERR unknown argument given to redis.register_function")),
                }
            }
            let Some(name) = name else {
                return Err(raise("ERR redis.register_function must get a function name argument"));
            };
            let Some(callback) = callback else {
                return Err(raise("ERR redis.register_function must get a callback argument"));
            };
            (name, callback, parse_flags(flags)?, description)
        }
        2 => {
            let Some(name) = lua_string(&a[0]) else {
                return Err(raise("ERR first argument to redis.register_function must be a string"));
            };
            let Value::Function(callback) = &a[1] else {
                return Err(raise("ERR second argument to redis.register_function must be a function"));
            };
            (name, callback.clone(), ScriptFlags { shebang: true, ..Default::default() }, None)
        }
        _ => return Err(raise("ERR wrong number of arguments to redis.register_function")),
    };
    if !valid_name(&name) {
        return Err(raise(NAME_ERROR));
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    Ok(Registered { info: FunctionInfo { name, flags, description }, callback })
}

/// FUNCTION RESTORE's policy for the libraries already loaded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RestorePolicy {
    /// Delete them all first.
    Flush,
    /// Keep them; a library of the same name is an error.
    Append,
    /// Keep them; a library of the same name is replaced.
    Replace,
}

/// A library run and registered, not yet in the engine.
struct Staged {
    name: String,
    code: Vec<u8>,
    registered: Vec<Registered>,
}

/// A library's metadata line (`#!lua name=...`): its name, checked in the
/// order of Redis's functionExtractLibMetaData (the line split as
/// `sdssplitargs` does, `name=` in any case, once), then functionsVerifyName,
/// then the engine (any case); where the code after the line starts.
fn library_metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let invalid = || "ERR Invalid library metadata".to_string();
    let end = code.iter().position(|&c| c == b'\n').ok_or_else(invalid)?;
    let parts = crate::persistence::aof::manifest::split_args(&code[..end]).filter(|p| !p.is_empty()).ok_or_else(invalid)?;
    let mut name: Option<&[u8]> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err("ERR Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(&part[5..]);
        } else {
            return Err(format!("ERR Invalid metadata value given: {}", String::from_utf8_lossy(part)));
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !valid_name(name) {
        return Err(NAME_ERROR.into());
    }
    let engine = parts[0].get(2..).unwrap_or_default();
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!("ERR Engine '{}' not found", String::from_utf8_lossy(engine)));
    }
    Ok((String::from_utf8_lossy(name).into_owned(), end))
}

impl Engine {
    /// FUNCTION LOAD [REPLACE] code: the library's name.
    pub(super) fn load_library(&mut self, code: &[u8], replace: bool) -> Result<String, String> {
        let (name, body_at) = library_metadata(code)?;
        if self.libraries.contains_key(&name) && !replace {
            return Err(format!("ERR Library '{}' already exists", name));
        }
        let staged = self.stage(name, code, body_at)?;
        for f in staged.registered.iter().map(|r| &r.info.name) {
            if let Some(existing) = self.functions.get(&f.to_ascii_lowercase()) {
                if existing.library != staged.name {
                    return Err(format!("ERR Function {} already exists", f));
                }
            }
        }
        self.unlink(&staged.name);
        let name = staged.name.clone();
        self.link(staged);
        Ok(name)
    }

    /// Runs a library's code; what it registered (at least one function).
    fn stage(&self, name: String, code: &[u8], body_at: usize) -> Result<Staged, String> {
        let registered = self.run_library_code(&code[body_at..]).map_err(|e| format!("ERR Error registering functions: {}", e))?;
        if registered.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok(Staged { name, code: code.to_vec(), registered })
    }

    /// Removes library `name` and its functions, if it is there.
    pub(super) fn unlink(&mut self, name: &str) -> Option<Library> {
        let old = self.libraries.remove(name)?;
        for f in &old.functions {
            self.functions.remove(&f.name.to_ascii_lowercase());
        }
        self.publish_counts();
        Some(old)
    }

    /// Every library gone (FUNCTION FLUSH).
    pub(super) fn clear_libraries(&mut self) {
        self.libraries.clear();
        self.functions.clear();
        self.publish_counts();
    }

    /// FUNCTION STATS's counts, readable while a function runs.
    fn publish_counts(&self) {
        super::STATS.libraries.store(self.libraries.len(), std::sync::atomic::Ordering::Relaxed);
        super::STATS.functions.store(self.functions.len(), std::sync::atomic::Ordering::Relaxed);
    }

    fn link(&mut self, staged: Staged) {
        let mut listed = Vec::with_capacity(staged.registered.len());
        for r in staged.registered {
            self.functions.insert(r.info.name.to_ascii_lowercase(), Func { callback: r.callback, flags: r.info.flags, library: staged.name.clone() });
            listed.push(r.info);
        }
        self.libraries.insert(staged.name, Library { code: staged.code, functions: listed });
        self.publish_counts();
    }

    /// FUNCTION RESTORE (and the libraries of an RDB): every library is run
    /// apart first (Redis's new functionsLibCtx), then joined to the loaded
    /// ones as `policy` says (Redis's libraryJoin); on any error nothing
    /// changes.
    pub(super) fn restore_libraries(&mut self, codes: &[Vec<u8>], policy: RestorePolicy) -> Result<(), String> {
        let mut staged: Vec<Staged> = Vec::with_capacity(codes.len());
        for code in codes {
            let (name, body_at) = library_metadata(code)?;
            if staged.iter().any(|s| s.name == name) {
                return Err(format!("ERR Library '{}' already exists", name));
            }
            let lib = self.stage(name, code, body_at)?;
            for f in lib.registered.iter().map(|r| &r.info.name) {
                if staged.iter().any(|s| s.registered.iter().any(|g| g.info.name.eq_ignore_ascii_case(f))) {
                    return Err(format!("ERR Function {} already exists", f));
                }
            }
            staged.push(lib);
        }
        if policy != RestorePolicy::Flush {
            for s in &staged {
                if self.libraries.contains_key(&s.name) && policy == RestorePolicy::Append {
                    return Err(format!("ERR Library {} already exists", s.name));
                }
            }
            for s in &staged {
                for f in s.registered.iter().map(|r| &r.info.name) {
                    // A function of a library being replaced goes with it.
                    if self.functions.get(&f.to_ascii_lowercase()).is_some_and(|existing| !staged.iter().any(|t| t.name == existing.library)) {
                        return Err(format!("ERR Function {} already exists", f));
                    }
                }
            }
        } else {
            self.clear_libraries();
        }
        for s in staged {
            self.unlink(&s.name);
            self.link(s);
        }
        Ok(())
    }

    /// Runs a library's code (after its metadata line) with
    /// `redis.register_function`; what it registered.
    fn run_library_code(&self, body: &[u8]) -> Result<Vec<Registered>, String> {
        let lua = &self.lua;
        let fail = |e: mlua::Error| match script_error(&e) {
            Some(se) => String::from_utf8_lossy(&se.0).into_owned(),
            None => format!("ERR {}", mlua_error_text(&e)),
        };
        let env = self.library_env().map_err(fail)?;
        let chunk = lua
            .load(body)
            .set_name("@user_function")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(env.clone())
            .into_function()
            .map_err(|e| format!("ERR Error compiling function: {}", mlua_error_text(&e)))?;
        let registered: RefCell<Vec<Registered>> = RefCell::new(Vec::new());
        let load_redis: Table = env.raw_get("redis").map_err(fail)?;
        // Redis's LOAD_TIMEOUT_MS: the hook stops a load running longer.
        super::run::RUN.load_deadline_ms.store(crate::util::unix_ms() + super::run::LOAD_TIMEOUT_MS, std::sync::atomic::Ordering::Relaxed);
        let ran = lua.scope(|scope| {
            let register = scope.create_function(|_, a: Variadic<Value>| {
                let r = registration(a)?;
                let mut list = registered.borrow_mut();
                if list.iter().any(|l| l.info.name == r.info.name) {
                    return Err(raise("ERR Function already exists in the library"));
                }
                list.push(r);
                Ok(())
            })?;
            load_redis.raw_set("register_function", register)?;
            chunk.call::<()>(())
        });
        super::run::RUN.load_deadline_ms.store(0, std::sync::atomic::Ordering::Relaxed);
        // A function that kept the load's `redis` and calls
        // register_function later is refused (Redis checks its load ctx).
        let late = lua
            .create_function(|_, _: Variadic<Value>| -> mlua::Result<()> {
                Err(raise("ERR redis.register_function can only be called on FUNCTION LOAD command"))
            })
            .map_err(fail)?;
        load_redis.raw_set("register_function", late).map_err(fail)?;
        ran.map_err(fail)?;
        // From now on the library's code sees the globals and the whole
        // `redis` library.
        env.raw_set("redis", Value::Nil).map_err(fail)?;
        let meta = lua.create_table().map_err(fail)?;
        meta.raw_set("__index", lua.globals()).map_err(fail)?;
        meta.raw_set("__newindex", self.guard.raw_get::<Value>("__newindex").map_err(fail)?).map_err(fail)?;
        env.set_metatable(Some(meta)).map_err(fail)?;
        Ok(registered.into_inner())
    }

    /// A library's globals: its own table over the shared globals, with a
    /// `redis` that only registers functions and logs while it loads.
    fn library_env(&self) -> mlua::Result<Table> {
        let lua: &Lua = &self.lua;
        // While it loads, a library sees nothing but `redis` (Redis runs
        // the code in an empty sandbox); afterwards the shared globals.
        let env = lua.create_table()?;
        env.set_metatable(Some(self.guard.clone()))?;
        let load_redis = lua.create_table()?;
        for key in ["log", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING", "REDIS_VERSION", "REDIS_VERSION_NUM"] {
            load_redis.raw_set(key, self.redis.raw_get::<Value>(key)?)?;
        }
        // Anything else of `redis` is missing while loading, as a global is.
        load_redis.set_metatable(Some(self.guard.clone()))?;
        env.raw_set("redis", load_redis)?;
        Ok(env)
    }

    /// Loads every library again (into a new interpreter).
    pub(super) fn reload_libraries(&mut self, libraries: Vec<(String, Vec<u8>)>) {
        for (name, code) in libraries {
            if let Err(e) = self.load_library(&code, true) {
                crate::warning!("Library {} could not be loaded again: {}", name, e);
            }
        }
    }
}
