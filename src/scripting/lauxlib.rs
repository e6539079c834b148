//! What the C libraries Redis bundles (lua_cmsgpack, lua_struct, lua_bit)
//! take from Lua 5.1's lauxlib for their argument checks and errors, for
//! their Rust versions here: the same texts, with the same position prefix
//! (`luaL_where`) and the function's name as it was called
//! (`luaL_argerror`).

use mlua::{Lua, LuaString, Value};

/// Lua 5.1's `LUAI_MAXCSTACK`: the most stack slots a C function may use
/// (`lua_checkstack` fails beyond it).
pub const MAXCSTACK: usize = 8000;

/// How much of a thread's stack the libraries' recursion (cjson's nesting)
/// may use before refusing to go deeper, as Lua's C stack check would: a
/// shard thread has 32 MiB (`SHARD_STACK_BYTES`), which the recursion
/// needs only when a script raises the depth limits past Redis's defaults
/// (and in debug builds, whose frames are several times larger).
const RECURSION_STACK_BYTES: usize = 24 << 20;

/// An address on the current stack, to measure the stack used below it.
pub fn stack_mark() -> usize {
    let here = 0u8;
    std::hint::black_box(&here) as *const u8 as usize
}

/// Whether the recursion since `mark` (from `stack_mark`) used up its
/// share of the stack (which grows down on every platform ringkv runs on).
pub fn stack_exhausted(mark: usize) -> bool {
    mark.saturating_sub(stack_mark()) > RECURSION_STACK_BYTES
}

/// `luaL_where(L, 1)`: "chunk:line: " of the function that called the
/// running library function, nothing when that is not Lua code (`pcall`).
fn where1(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| match d.current_line() {
        Some(line) if line > 0 => {
            let src = d.source().short_src.map(|s| s.into_owned()).unwrap_or_default();
            format!("{src}:{line}: ")
        }
        _ => String::new(),
    })
    .unwrap_or_default()
}

/// `luaL_error`: `msg` after the caller's position.
pub fn error(lua: &Lua, msg: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("{}{msg}", where1(lua)))
}

/// `luaL_argerror`: "bad argument #n to 'name' (extramsg)", the name the
/// running function was called by ('?' when none; a method's self is not
/// counted).
pub fn arg_error(lua: &Lua, narg: i32, extramsg: &str) -> mlua::Error {
    let names = lua.inspect_stack(0, |d| {
        let n = d.names();
        (n.name.map(|s| s.into_owned()), n.name_what)
    });
    let Some((name, what)) = names else {
        return error(lua, format!("bad argument #{narg} ({extramsg})"));
    };
    let mut narg = narg;
    let name = name.unwrap_or_else(|| "?".into());
    if what == Some("method") {
        narg -= 1;
        if narg == 0 {
            return error(lua, format!("calling '{name}' on bad self ({extramsg})"));
        }
    }
    error(lua, format!("bad argument #{narg} to '{name}' ({extramsg})"))
}

/// `luaL_typename`: Lua's name of an argument's type ("no value" when absent).
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::LightUserData(_) | Value::UserData(_)) => "userdata",
        Some(v) => v.type_name(),
    }
}

/// `luaL_typerror`: "<tname> expected, got <type>" as an argument error.
pub fn type_error(lua: &Lua, args: &[Value], i: usize, tname: &str) -> mlua::Error {
    arg_error(lua, i as i32 + 1, &format!("{tname} expected, got {}", type_name(args.get(i))))
}

/// `lua_tonumber` of argument `i` (0-based): numbers and numeric strings.
pub fn to_number(lua: &Lua, args: &[Value], i: usize) -> mlua::Result<Option<f64>> {
    match args.get(i) {
        Some(Value::Integer(n)) => Ok(Some(*n as f64)),
        Some(Value::Number(n)) => Ok(Some(*n)),
        Some(v @ Value::String(_)) => lua.coerce_number(v.clone()),
        _ => Ok(None),
    }
}

/// `luaL_checknumber`.
pub fn check_number(lua: &Lua, args: &[Value], i: usize) -> mlua::Result<f64> {
    to_number(lua, args, i)?.ok_or_else(|| type_error(lua, args, i, "number"))
}

/// 2^63, the end of the 64-bit integers' range.
pub const TWO_63: f64 = (1u64 << 63) as f64;

/// C's conversion of a double to a 64-bit integer on x86-64 (truncation;
/// NaN and out of range give the "integer indefinite" value, i64::MIN).
pub fn to_i64(n: f64) -> i64 {
    if !(-TWO_63..TWO_63).contains(&n) {
        return i64::MIN;
    }
    n as i64
}

/// `luaL_checkinteger` (`lua_tointeger`: truncation).
pub fn check_integer(lua: &Lua, args: &[Value], i: usize) -> mlua::Result<i64> {
    check_number(lua, args, i).map(to_i64)
}

/// `luaL_optinteger`: `default` when the argument is absent or nil.
pub fn opt_integer(lua: &Lua, args: &[Value], i: usize, default: i64) -> mlua::Result<i64> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => check_integer(lua, args, i),
    }
}

/// `luaL_checklstring`: a string, or a number as Lua writes it.
pub fn check_string(lua: &Lua, args: &[Value], i: usize) -> mlua::Result<LuaString> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => lua.coerce_string(v.clone())?.ok_or_else(|| type_error(lua, args, i, "string")),
        _ => Err(type_error(lua, args, i, "string")),
    }
}
