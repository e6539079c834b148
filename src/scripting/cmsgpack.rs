//! `cmsgpack`: MessagePack for scripts, as lua-cmsgpack 0.4.0 (the version
//! Redis 7.0 bundles) encodes and decodes it, byte for byte.
//!
//! Encoding: an integral number in the 64-bit range as the smallest
//! fixint/uint/int that holds it (non-negative numbers as unsigned), any
//! other number as a float when the float round-trips, else a double;
//! strings as fixstr/str8/str16/str32; a table whose keys are exactly
//! 1..n as an array, any other table as a map (in `next` order); tables
//! nested `MAX_NESTING` deep, functions, userdata and nil as nil.
//! `pack(a, b, ...)` is the concatenation of the encodings.
//!
//! Decoding: everything lua-cmsgpack reads (not bin, ext, fixext: "Bad data
//! format in input."); a truncated input is "Missing bytes in input.".
//! `unpack(s)` returns every value; `unpack_one(s[, offset])` and
//! `unpack_limit(s, n[, offset])` return the offset to go on from (-1 at
//! the end) before the values. The C library's stack use is counted as it
//! grows (values returned, tables being filled), so that an input it
//! refuses with "stack overflow (...)" is refused here too; decoding is
//! iterative (no recursion however deep the input nests).

use mlua::{Lua, Table, Value, Variadic};

use super::lauxlib::{self, MAXCSTACK};

/// lua-cmsgpack's LUACMSGPACK_MAX_NESTING: a table this deep is encoded as
/// nil (so that a table referring to itself ends).
pub const MAX_NESTING: usize = 16;

pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let m = lua.create_table()?;
    m.set("pack", lua.create_function(|lua, a: Variadic<Value>| pack(lua, &a))?)?;
    m.set("unpack", lua.create_function(|lua, a: Variadic<Value>| unpack(lua, &a, Mode::All))?)?;
    m.set("unpack_one", lua.create_function(|lua, a: Variadic<Value>| unpack(lua, &a, Mode::One))?)?;
    m.set("unpack_limit", lua.create_function(|lua, a: Variadic<Value>| unpack(lua, &a, Mode::Limit))?)?;
    m.set("_NAME", "cmsgpack")?;
    m.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    m.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    m.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    globals.set("cmsgpack", m)
}

fn pack(lua: &Lua, args: &[Value]) -> mlua::Result<mlua::LuaString> {
    if args.is_empty() {
        return Err(lauxlib::arg_error(lua, 0, "MessagePack pack needs input."));
    }
    // lua_checkstack(L, nargs) with the arguments already on the stack.
    if 2 * args.len() > MAXCSTACK {
        return Err(lauxlib::arg_error(lua, 0, "Too many arguments for MessagePack pack."));
    }
    let mut out = Vec::new();
    for v in args {
        encode(v, &mut out, 0)?;
    }
    lua.create_string(&out)
}

fn encode(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(*i, out),
        Value::Number(n) => encode_number(*n, out),
        Value::Table(t) if level < MAX_NESTING => encode_table(t, out, level)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// A number: an integer when it is one in the 64-bit range (-0 too), else
/// a float or a double.
fn encode_number(n: f64, out: &mut Vec<u8>) {
    if n.is_finite() && n.trunc() == n && (-lauxlib::TWO_63..lauxlib::TWO_63).contains(&n) {
        return encode_int(n as i64, out);
    }
    let f = n as f32;
    if f as f64 == n {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=0x7f => out.push(n as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A container header: the fix form (`fix | n`) up to 15, then 16 and 32
/// bits.
fn encode_header(fix: u8, code16: u8, n: usize, out: &mut Vec<u8>) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(code16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(code16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// lua-cmsgpack's table_is_an_array: every key a number that is a
/// positive C `int`, and the largest equal to their count (so 1..n,
/// without holes); the empty table is an array. Its length, or None.
fn array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let (mut count, mut max) = (0i64, 0i64);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if !(n > 0.0 && n <= i32::MAX as f64 && n.trunc() == n) {
            return Ok(None);
        }
        max = max.max(n as i64);
        count += 1;
    }
    Ok((max == count).then_some(count as usize))
}

fn encode_table(t: &Table, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    if let Some(len) = array_len(t)? {
        encode_header(0x90, 0xdc, len, out);
        for j in 1..=len {
            encode(&t.raw_get::<Value>(j)?, out, level + 1)?;
        }
        return Ok(());
    }
    let mut len = 0;
    for pair in t.pairs::<Value, Value>() {
        pair?;
        len += 1;
    }
    encode_header(0x80, 0xde, len, out);
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        encode(&k, out, level + 1)?;
        encode(&v, out, level + 1)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    All,
    One,
    Limit,
}

/// Why a decode stopped (lua-cmsgpack's cursor errors, and its
/// luaL_checkstack failures).
enum Stop {
    Eof,
    BadFormat,
    Stack(&'static str),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Stop {
    fn from(e: mlua::Error) -> Stop {
        Stop::Lua(e)
    }
}

const TOO_MANY: &str = "too many return values at once; use unpack_one or unpack_limit instead.";

fn unpack(lua: &Lua, args: &[Value], mode: Mode) -> mlua::Result<Variadic<Value>> {
    // Arguments are read in the C library's order (limit, offset, string);
    // `unpack` keeps every argument on the stack, the others only the first.
    let (limit, offset, base) = match mode {
        Mode::All => (0, 0, args.len().max(1)),
        Mode::One => (1, lauxlib::opt_integer(lua, args, 1, 0)?, 1),
        Mode::Limit => {
            let limit = lauxlib::check_integer(lua, args, 1)?;
            (limit, lauxlib::opt_integer(lua, args, 2, 0)?, 1)
        }
    };
    let s = lauxlib::check_string(lua, args, 0)?;
    let s = s.as_bytes();
    let len = s.len();
    if offset < 0 || limit < 0 {
        return Err(lauxlib::error(lua, format!("Invalid request to unpack with offset of {} and limit of {}.", offset as i32, len as i32)));
    }
    if offset as u64 > len as u64 {
        return Err(lauxlib::error(lua, format!("Start offset {} greater than input length {}.", offset as i32, len as i32)));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut d = Decoder { s: &s, pos: offset as usize, top: base };
    let mut values = Vec::new();
    while d.pos < len && (values.len() as i64) < limit {
        match d.value(lua) {
            Ok(v) => values.push(v),
            Err(Stop::Eof) => return Err(lauxlib::error(lua, "Missing bytes in input.")),
            Err(Stop::BadFormat) => return Err(lauxlib::error(lua, "Bad data format in input.")),
            Err(Stop::Stack(msg)) => return Err(lauxlib::error(lua, format!("stack overflow ({msg})"))),
            Err(Stop::Lua(e)) => return Err(e),
        }
    }
    if decode_all {
        return Ok(Variadic::from_iter(values));
    }
    if d.top + 1 > MAXCSTACK {
        return Err(lauxlib::error(lua, "stack overflow (in function mp_unpack_full)"));
    }
    let next = if d.pos == len { -1 } else { d.pos as i64 };
    Ok(Variadic::from_iter(std::iter::once(Value::Integer(next)).chain(values)))
}

/// A table being filled.
struct Open {
    table: Table,
    map: bool,
    left: usize,
    /// The next array index.
    index: i64,
    /// A map's key waiting for its value.
    key: Option<Value>,
}

struct Decoder<'a> {
    s: &'a [u8],
    pos: usize,
    /// The C library's stack slots in use (arguments, values decoded,
    /// open tables and their pending keys).
    top: usize,
}

impl Decoder<'_> {
    fn need(&self, n: usize) -> Result<(), Stop> {
        if self.s.len() - self.pos < n {
            return Err(Stop::Eof);
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Stop> {
        self.need(n)?;
        let b = &self.s[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn be(&mut self, n: usize) -> Result<u64, Stop> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    /// One top-level value (left on the C stack: `top` grows by one).
    fn value(&mut self, lua: &Lua) -> Result<Value, Stop> {
        let mut open: Vec<Open> = Vec::new();
        loop {
            // mp_decode_to_lua_type: a byte, then room for one more slot.
            self.need(1)?;
            if self.top + 1 > MAXCSTACK {
                return Err(Stop::Stack(TOO_MANY));
            }
            let mut v = match self.scalar(lua)? {
                Scalar::Value(v) => v,
                Scalar::Container { map, len } => {
                    let table = lua.create_table()?;
                    self.top += 1;
                    if !map && self.top + 1 > MAXCSTACK {
                        return Err(Stop::Stack("in function mp_decode_to_lua_array"));
                    }
                    if len > 0 {
                        if !map {
                            self.top += 1; // the first index
                        }
                        open.push(Open { table, map, left: len, index: 1, key: None });
                        continue;
                    }
                    self.top -= 1;
                    Value::Table(table)
                }
            };
            // Hand the value to the table being filled, closing each that
            // is complete.
            loop {
                let Some(o) = open.last_mut() else {
                    self.top += 1;
                    return Ok(v);
                };
                if o.map && o.key.is_none() {
                    o.key = Some(v);
                    self.top += 1;
                    break;
                }
                let k = match o.key.take() {
                    Some(k) => k,
                    None => {
                        o.index += 1;
                        Value::Integer(o.index - 1)
                    }
                };
                // lua_settable's own errors (raised without a position).
                match &k {
                    Value::Nil => return Err(Stop::Lua(mlua::Error::runtime("table index is nil"))),
                    Value::Number(n) if n.is_nan() => return Err(Stop::Lua(mlua::Error::runtime("table index is NaN"))),
                    _ => {}
                }
                o.table.raw_set(k, v)?;
                self.top -= 1; // the key (or index)
                o.left -= 1;
                if o.left > 0 {
                    if !o.map {
                        self.top += 1; // the next index
                    }
                    break;
                }
                let done = open.pop().expect("an open table");
                self.top -= 1;
                v = Value::Table(done.table);
            }
        }
    }

    fn scalar(&mut self, lua: &Lua) -> Result<Scalar, Stop> {
        let code = self.s[self.pos];
        self.pos += 1;
        let int = |i: i64| Ok(Scalar::Value(Value::Integer(i)));
        match code {
            0xcc => self.be(1).map(|n| n as i64).and_then(int),
            0xcd => self.be(2).map(|n| n as i64).and_then(int),
            0xce => self.be(4).map(|n| n as i64).and_then(int),
            // As lua_pushinteger: the unsigned value as a signed one.
            0xcf => self.be(8).map(|n| n as i64).and_then(int),
            0xd0 => self.be(1).map(|n| n as u8 as i8 as i64).and_then(int),
            0xd1 => self.be(2).map(|n| n as u16 as i16 as i64).and_then(int),
            0xd2 => self.be(4).map(|n| n as u32 as i32 as i64).and_then(int),
            0xd3 => self.be(8).map(|n| n as i64).and_then(int),
            0xc0 => Ok(Scalar::Value(Value::Nil)),
            0xc2 => Ok(Scalar::Value(Value::Boolean(false))),
            0xc3 => Ok(Scalar::Value(Value::Boolean(true))),
            0xca => self.be(4).map(|n| Scalar::Value(Value::Number(f32::from_bits(n as u32) as f64))),
            0xcb => self.be(8).map(|n| Scalar::Value(Value::Number(f64::from_bits(n)))),
            0xd9 => self.string(lua, 1),
            0xda => self.string(lua, 2),
            0xdb => self.string(lua, 4),
            0xdc => self.be(2).map(|n| Scalar::Container { map: false, len: n as usize }),
            0xdd => self.be(4).map(|n| Scalar::Container { map: false, len: n as usize }),
            0xde => self.be(2).map(|n| Scalar::Container { map: true, len: n as usize }),
            0xdf => self.be(4).map(|n| Scalar::Container { map: true, len: n as usize }),
            0x00..=0x7f => int(code as i64),
            0xe0..=0xff => int(code as i8 as i64),
            0xa0..=0xbf => {
                let len = (code & 0x1f) as usize;
                self.take(len).and_then(|b| Ok(Scalar::Value(Value::String(lua.create_string(b)?))))
            }
            0x90..=0x9f => Ok(Scalar::Container { map: false, len: (code & 0xf) as usize }),
            0x80..=0x8f => Ok(Scalar::Container { map: true, len: (code & 0xf) as usize }),
            _ => Err(Stop::BadFormat),
        }
    }

    /// A str8/16/32: its length in `n` bytes, then the bytes.
    fn string(&mut self, lua: &Lua, n: usize) -> Result<Scalar, Stop> {
        let len = self.be(n)? as usize;
        let b = self.take(len)?;
        Ok(Scalar::Value(Value::String(lua.create_string(b)?)))
    }
}

enum Scalar {
    Value(Value),
    Container { map: bool, len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_int(n, &mut out);
        out
    }

    fn num(n: f64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_number(n, &mut out);
        out
    }

    #[test]
    fn integers_take_the_smallest_form_at_each_boundary() {
        assert_eq!(int(127), [0x7f]);
        assert_eq!(int(128), [0xcc, 0x80]);
        assert_eq!(int(65536), [0xce, 0, 1, 0, 0]);
        assert_eq!(int(1 << 32), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(int(-32), [0xe0]);
        assert_eq!(int(-33), [0xd0, 0xdf]);
        assert_eq!(int(-32769), [0xd2, 0xff, 0xff, 0x7f, 0xff]);
        assert_eq!(int(-1099511627776), [0xd3, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn numbers_are_integers_floats_or_doubles() {
        assert_eq!(num(-0.0), [0]);
        assert_eq!(num(1.5), [0xca, 0x3f, 0xc0, 0, 0]);
        assert_eq!(num(0.1), [0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]);
        // 2^63 is out of the 64-bit range: a float, as C's check finds.
        assert_eq!(num(lauxlib::TWO_63), [0xca, 0x5f, 0, 0, 0]);
        assert_eq!(num(f64::INFINITY), [0xca, 0x7f, 0x80, 0, 0]);
        assert_eq!(num(-lauxlib::TWO_63), [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    }
}
