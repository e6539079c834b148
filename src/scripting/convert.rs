//! Type conversions between Redis replies and Lua values, as Redis 7.0's
//! script_lua.c does them.
//!
//! Reply -> Lua (`redisProtocolToLuaType`), for what `redis.call` returns:
//! integer -> number, bulk -> string, null bulk / null array -> false
//! (RESP2) or nil (RESP3 null), status -> `{ok=...}`, error -> `{err=...}`,
//! array -> table; with `redis.setresp(3)` also map -> `{map={...}}`, set ->
//! `{set={member=true}}`, boolean -> boolean, double -> `{double=n}`, big
//! number -> `{big_number=s}`, verbatim -> `{verbatim_string={format=,string=}}`.
//!
//! Lua -> reply (`luaReplyToRedisReply`), for what a script returns: string
//! -> bulk, number -> integer (truncated), boolean -> 1 / null (RESP2) or a
//! boolean (RESP3), table with `err` -> error, `ok` -> status, `double`,
//! `big_number`, `map`, `set`, else an array of the items 1..n up to the
//! first nil; anything else -> null.

use mlua::{Lua, Table, Value};

use crate::protocol::Reply;

/// Nesting deeper than this is answered as Redis does when the Lua stack
/// cannot grow (a table that contains itself would recurse forever).
const DEPTH_MAX: usize = 1000;

/// The Lua value of the RESP reply at `buf[*pos..]` (written by `Reply`,
/// so well formed); `*pos` moves past it.
pub fn reply_to_lua(lua: &Lua, buf: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let kind = buf[*pos];
    let line_end = *pos + memchr::memchr(b'\r', &buf[*pos..]).expect("a complete reply");
    let line = &buf[*pos + 1..line_end];
    *pos = line_end + 2;
    let number = || std::str::from_utf8(line).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let text = |lua: &Lua| lua.create_string(line).map(Value::String);
    Ok(match kind {
        b':' => Value::Integer(number()),
        b'+' => Value::Table(one_field(lua, "ok", text(lua)?)?),
        b'-' => Value::Table(one_field(lua, "err", text(lua)?)?),
        b'$' | b'=' | b'!' => {
            let n = number();
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let body = &buf[*pos..*pos + n as usize];
            *pos += n as usize + 2;
            match kind {
                b'=' => {
                    let t = lua.create_table()?;
                    t.raw_set("format", lua.create_string(&body[..3.min(body.len())])?)?;
                    t.raw_set("string", lua.create_string(body.get(4..).unwrap_or(b""))?)?;
                    Value::Table(one_field(lua, "verbatim_string", Value::Table(t))?)
                }
                b'!' => Value::Table(one_field(lua, "err", Value::String(lua.create_string(body)?))?),
                _ => Value::String(lua.create_string(body)?),
            }
        }
        b'*' | b'>' => {
            let n = number();
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let t = lua.create_table_with_capacity(n as usize, 0)?;
            for i in 1..=n {
                let v = reply_to_lua(lua, buf, pos)?;
                t.raw_set(i, v)?;
            }
            Value::Table(t)
        }
        b'%' => {
            let t = lua.create_table()?;
            for _ in 0..number() {
                let k = reply_to_lua(lua, buf, pos)?;
                let v = reply_to_lua(lua, buf, pos)?;
                t.raw_set(k, v)?;
            }
            Value::Table(one_field(lua, "map", Value::Table(t))?)
        }
        b'~' => {
            let t = lua.create_table()?;
            for _ in 0..number() {
                let k = reply_to_lua(lua, buf, pos)?;
                t.raw_set(k, true)?;
            }
            Value::Table(one_field(lua, "set", Value::Table(t))?)
        }
        b'|' => {
            // Attributes are skipped: the value follows them.
            for _ in 0..number() * 2 {
                reply_to_lua(lua, buf, pos)?;
            }
            return reply_to_lua(lua, buf, pos);
        }
        b'_' => Value::Nil,
        b'#' => Value::Boolean(line == b"t"),
        b',' => {
            let d = std::str::from_utf8(line).ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
            Value::Table(one_field(lua, "double", Value::Number(d))?)
        }
        b'(' => Value::Table(one_field(lua, "big_number", text(lua)?)?),
        _ => Value::Nil,
    })
}

fn one_field(lua: &Lua, name: &str, v: Value) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(name, v)?;
    Ok(t)
}

/// Writes what a script returned as the caller's reply; `script_resp`:
/// the protocol the script selected (`redis.setresp`), which decides the
/// booleans as in Redis (RESP2: 1 or the caller's null).
pub fn lua_to_reply(v: &Value, r: &mut Reply, script_resp: u8) {
    write_value(v, r, 0, script_resp)
}

fn write_value(v: &Value, r: &mut Reply, depth: usize, script_resp: u8) {
    if depth > DEPTH_MAX {
        return r.error("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => r.bulk(&s.as_bytes()),
        Value::Integer(i) => r.int(*i),
        Value::Number(n) => r.int(truncate(*n)),
        Value::Boolean(b) => {
            if script_resp >= 3 {
                r.boolean(*b)
            } else if *b {
                r.int(1)
            } else {
                r.null()
            }
        }
        Value::Table(t) => write_table(t, r, depth, script_resp),
        _ => r.null(),
    }
}

/// C's `(long long)` of a double: toward zero, saturating (Rust's `as`).
/// Redis's `(long long)` of a Lua number: C's conversion on x86-64 (NaN
/// and out of range: i64::MIN, not Rust's saturation).
fn truncate(n: f64) -> i64 {
    super::lauxlib::to_i64(n)
}

fn write_table(t: &Table, r: &mut Reply, depth: usize, script_resp: u8) {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        return write_error(t, &e.as_bytes(), r);
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        let s = s.as_bytes();
        r.buf.push(b'+');
        r.buf.extend(s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        r.buf.extend_from_slice(b"\r\n");
        return;
    }
    match t.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return r.double(d),
        Ok(Value::Integer(i)) => return r.double(i as f64),
        _ => {}
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
        let s = s.as_bytes();
        if r.resp >= 3 {
            r.buf.push(b'(');
            r.buf.extend(s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
            r.buf.extend_from_slice(b"\r\n");
        } else {
            r.bulk(&s);
        }
        return;
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(Result::ok).collect();
        r.map(pairs.len());
        for (k, v) in &pairs {
            write_value(k, r, depth + 1, script_resp);
            write_value(v, r, depth + 1, script_resp);
        }
        return;
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let keys: Vec<Value> = s.pairs::<Value, Value>().filter_map(Result::ok).map(|(k, _)| k).collect();
        r.set(keys.len());
        for k in &keys {
            write_value(k, r, depth + 1, script_resp);
        }
        return;
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    r.array(items.len());
    for v in &items {
        write_value(v, r, depth + 1, script_resp);
    }
}

/// An `{err=...}` table returned by the script (not raised): its text as
/// the error reply, without the script's position (`luaReplyToRedisReply`).
fn write_error(t: &Table, msg: &[u8], r: &mut Reply) {
    r.error_bytes(msg);
    // An error a command of the script got, returned: counted already.
    if matches!(t.raw_get::<Value>(super::COUNTED), Ok(Value::Boolean(true))) {
        r.error_stats_counted = true;
    }
}

/// Argument `v` of `redis.call` as a command argument: strings as they
/// are, numbers as C's `%.17g` (Redis 7.0), anything else refused.
pub fn lua_to_arg(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::String(s) => out.extend_from_slice(&s.as_bytes()),
        Value::Integer(i) if i.unsigned_abs() < 100_000_000_000_000_000 => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Integer(i) => out.extend_from_slice(crate::protocol::reply::format_g17(*i as f64).as_bytes()),
        Value::Number(n) => out.extend_from_slice(crate::protocol::reply::format_g17(*n).as_bytes()),
        _ => return false,
    }
    true
}
