//! Libraries Redis adds to its Lua: `bit` (LuaBitOp), `cjson`, and the
//! deterministic `math.random` (Redis's rand48, reseeded with 0 before each
//! script so that a script gives the same sequence every time).
//! `cmsgpack` and `struct` are not provided (scripts using them get
//! "Script attempted to access nonexistent global variable").

use std::sync::atomic::{AtomicU64, Ordering};

use mlua::{Lua, Table, Value, Variadic};

/// rand48's state (48 bits), as Redis's `redisSrand48` / `redisLrand48`.
/// Scripts run one at a time (each holds every shard).
static RAND48: AtomicU64 = AtomicU64::new(0x1234ABCD330E);
const RAND48_MAX: i64 = i32::MAX as i64;

pub fn srand48(seed: i32) {
    RAND48.store((((seed as u32) as u64) << 16) | 0x330E, Ordering::Relaxed);
}

fn lrand48() -> i64 {
    let x = RAND48.load(Ordering::Relaxed);
    let next = (x.wrapping_mul(0x5DEECE66D).wrapping_add(0xB)) & ((1u64 << 48) - 1);
    RAND48.store(next, Ordering::Relaxed);
    (next >> 17) as i64
}

/// LuaBitOp's conversion of a number to a 32-bit integer (modulo 2^32).
fn tobit(v: &Value) -> mlua::Result<i32> {
    let n = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        Value::String(s) => {
            s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()).ok_or_else(|| mlua::Error::runtime("bad argument to bit operation (number expected)"))?
        }
        _ => return Err(mlua::Error::runtime("bad argument to bit operation (number expected)")),
    };
    Ok((n.round() as i128).rem_euclid(1 << 32) as u32 as i32)
}

fn arg(args: &Variadic<Value>, i: usize) -> mlua::Result<i32> {
    tobit(args.get(i).unwrap_or(&Value::Nil))
}

pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    bit.set("tobit", lua.create_function(|_, a: Variadic<Value>| Ok(arg(&a, 0)? as f64))?)?;
    bit.set("bnot", lua.create_function(|_, a: Variadic<Value>| Ok(!arg(&a, 0)? as f64))?)?;
    let fold = |lua: &Lua, op: fn(i32, i32) -> i32| {
        lua.create_function(move |_, a: Variadic<Value>| {
            let mut acc = arg(&a, 0)?;
            for i in 1..a.len() {
                acc = op(acc, arg(&a, i)?);
            }
            Ok(acc as f64)
        })
    };
    bit.set("band", fold(lua, |x, y| x & y)?)?;
    bit.set("bor", fold(lua, |x, y| x | y)?)?;
    bit.set("bxor", fold(lua, |x, y| x ^ y)?)?;
    let shift = |lua: &Lua, op: fn(i32, u32) -> i32| lua.create_function(move |_, a: Variadic<Value>| Ok(op(arg(&a, 0)?, (arg(&a, 1)? & 31) as u32) as f64));
    bit.set("lshift", shift(lua, |x, n| ((x as u32) << n) as i32)?)?;
    bit.set("rshift", shift(lua, |x, n| ((x as u32) >> n) as i32)?)?;
    bit.set("arshift", shift(lua, |x, n| x >> n)?)?;
    bit.set("rol", shift(lua, |x, n| (x as u32).rotate_left(n) as i32)?)?;
    bit.set("ror", shift(lua, |x, n| (x as u32).rotate_right(n) as i32)?)?;
    bit.set("bswap", lua.create_function(|_, a: Variadic<Value>| Ok((arg(&a, 0)? as u32).swap_bytes() as i32 as f64))?)?;
    bit.set(
        "tohex",
        lua.create_function(|_, a: Variadic<Value>| {
            let x = arg(&a, 0)? as u32;
            let n = if a.len() > 1 { arg(&a, 1)? } else { 8 };
            let (upper, digits) = (n < 0, n.unsigned_abs().min(8) as usize);
            let full = if upper { format!("{x:08X}") } else { format!("{x:08x}") };
            Ok(full[8 - digits..].to_string())
        })?,
    )?;
    globals.set("bit", bit)?;

    let math: Table = globals.get("math")?;
    math.set(
        "random",
        lua.create_function(|_, a: Variadic<Value>| {
            let r = (lrand48() % RAND48_MAX) as f64 / RAND48_MAX as f64;
            let int = |i: usize| -> mlua::Result<i64> {
                match a.get(i) {
                    Some(Value::Integer(n)) => Ok(*n),
                    Some(Value::Number(n)) => Ok(*n as i64),
                    _ => Err(mlua::Error::runtime(format!("bad argument #{} to 'random' (number expected)", i + 1))),
                }
            };
            match a.len() {
                0 => Ok(r),
                1 => {
                    let u = int(0)?;
                    if u < 1 {
                        return Err(mlua::Error::runtime("bad argument #1 to 'random' (interval is empty)"));
                    }
                    Ok((r * u as f64).floor() + 1.0)
                }
                2 => {
                    let (l, u) = (int(0)?, int(1)?);
                    if l > u {
                        return Err(mlua::Error::runtime("bad argument #2 to 'random' (interval is empty)"));
                    }
                    Ok((r * (u - l + 1) as f64).floor() + l as f64)
                }
                _ => Err(mlua::Error::runtime("wrong number of arguments")),
            }
        })?,
    )?;
    math.set(
        "randomseed",
        lua.create_function(|lua, seed: Value| {
            // luaL_checkint: a number, or a string that converts to one.
            let s = match lua.coerce_number(seed.clone())? {
                Some(n) => n as i64 as i32,
                None => {
                    let got = if seed.is_nil() { "no value" } else { seed.type_name() };
                    return Err(mlua::Error::runtime(format!("bad argument #1 to 'randomseed' (number expected, got {got})")));
                }
            };
            srand48(s);
            Ok(())
        })?,
    )?;
    super::cjson::install(lua, globals)?;
    Ok(())
}
