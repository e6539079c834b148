//! Libraries Redis adds to its Lua: `bit` (LuaBitOp), `cjson`, and the
//! deterministic `math.random` (Redis's rand48, reseeded with 0 before each
//! script so that a script gives the same sequence every time).
//! `cmsgpack` and `struct` are in their own modules.

use std::sync::atomic::{AtomicU64, Ordering};

use mlua::{Lua, Table, Value, Variadic};

use super::lauxlib;

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

/// LuaBitOp's `barg`: argument `i` (0-based) as 32 bits, from the low
/// word of the number plus 2^52+2^51 (rounding half to even, modulo 2^32);
/// a non-number (0 then) is refused.
fn barg(lua: &Lua, args: &[Value], i: usize) -> mlua::Result<u32> {
    let n = lauxlib::to_number(lua, args, i)?;
    let b = (n.unwrap_or(0.0) + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && n.is_none() {
        return Err(lauxlib::type_error(lua, args, i, "number"));
    }
    Ok(b)
}

/// LuaBitOp's result: the 32 bits as a signed number.
fn bret(b: u32) -> f64 {
    b as i32 as f64
}

/// The `bit` library (LuaBitOp 1.0.2).
fn install_bit(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    bit.set("tobit", lua.create_function(|lua, a: Variadic<Value>| Ok(bret(barg(lua, &a, 0)?)))?)?;
    bit.set("bnot", lua.create_function(|lua, a: Variadic<Value>| Ok(bret(!barg(lua, &a, 0)?)))?)?;
    // The first argument, then the others from the last one down.
    let fold = |lua: &Lua, op: fn(u32, u32) -> u32| {
        lua.create_function(move |lua, a: Variadic<Value>| {
            let mut acc = barg(lua, &a, 0)?;
            for i in (1..a.len()).rev() {
                acc = op(acc, barg(lua, &a, i)?);
            }
            Ok(bret(acc))
        })
    };
    bit.set("band", fold(lua, |x, y| x & y)?)?;
    bit.set("bor", fold(lua, |x, y| x | y)?)?;
    bit.set("bxor", fold(lua, |x, y| x ^ y)?)?;
    let shift = |lua: &Lua, op: fn(u32, u32) -> u32| {
        lua.create_function(move |lua, a: Variadic<Value>| {
            let b = barg(lua, &a, 0)?;
            Ok(bret(op(b, barg(lua, &a, 1)? & 31)))
        })
    };
    bit.set("lshift", shift(lua, |x, n| x << n)?)?;
    bit.set("rshift", shift(lua, |x, n| x >> n)?)?;
    bit.set("arshift", shift(lua, |x, n| ((x as i32) >> n) as u32)?)?;
    bit.set("rol", shift(lua, |x, n| x.rotate_left(n))?)?;
    bit.set("ror", shift(lua, |x, n| x.rotate_right(n))?)?;
    bit.set("bswap", lua.create_function(|lua, a: Variadic<Value>| Ok(bret(barg(lua, &a, 0)?.swap_bytes())))?)?;
    bit.set(
        "tohex",
        lua.create_function(|lua, a: Variadic<Value>| {
            let x = barg(lua, &a, 0)?;
            let n = if a.len() > 1 { barg(lua, &a, 1)? as i32 } else { 8 };
            let (upper, n) = (n < 0, n.wrapping_abs());
            // (-2^31 stays negative; Redis's build prints 8 digits.)
            let digits = if n < 0 { 8 } else { n.min(8) as usize };
            let full = if upper { format!("{x:08X}") } else { format!("{x:08x}") };
            Ok(full[8 - digits..].to_string())
        })?,
    )?;
    globals.set("bit", bit)
}

pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    install_bit(lua, globals)?;
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
    super::cmsgpack::install(lua, globals)?;
    super::luastruct::install(lua, globals)?;
    Ok(())
}
