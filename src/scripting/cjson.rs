//! `cjson.encode` / `cjson.decode` as lua-cjson (the version Redis bundles)
//! behaves for the common cases: numbers as `%.14g`, `/` escaped, a table
//! with only positive integer keys as an array (when not too sparse), any
//! other table as an object, `cjson.null` for JSON null. Options:
//! `encode_max_depth`, `decode_max_depth`, `encode_invalid_numbers` and
//! `encode_keep_buffer` (accepted, no effect: there is no kept buffer);
//! the others (`encode_sparse_array`, `encode_number_precision`,
//! `decode_invalid_numbers`) are not provided.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use mlua::{LightUserData, Lua, Table, Value};

/// lua-cjson's default nesting limits.
const DEPTH_DEFAULT: usize = 1000;

/// The options, one set for the one interpreter (reset with it, `reset`).
static ENCODE_MAX_DEPTH: AtomicUsize = AtomicUsize::new(DEPTH_DEFAULT);
static DECODE_MAX_DEPTH: AtomicUsize = AtomicUsize::new(DEPTH_DEFAULT);
/// encode_invalid_numbers: 0 off (an error), 1 on (NaN, Infinity), 2 "null".
static ENCODE_INVALID: AtomicU8 = AtomicU8::new(0);
static KEEP_BUFFER: AtomicU8 = AtomicU8::new(1);

/// The options' defaults (a new interpreter: SCRIPT FLUSH).
fn reset() {
    ENCODE_MAX_DEPTH.store(DEPTH_DEFAULT, Ordering::Relaxed);
    DECODE_MAX_DEPTH.store(DEPTH_DEFAULT, Ordering::Relaxed);
    ENCODE_INVALID.store(0, Ordering::Relaxed);
    KEEP_BUFFER.store(1, Ordering::Relaxed);
}

/// lua-cjson's json_integer_option: sets the option when an argument is
/// given (an integer in 1..=i32::MAX), returns its value.
fn integer_option(lua: &Lua, name: &'static str, option: &'static AtomicUsize) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, a: mlua::Variadic<Value>| {
        if let Some(v) = a.first().filter(|v| !v.is_nil()) {
            let n = lua.coerce_integer(v.clone())?.filter(|n| (1..=i32::MAX as i64).contains(n));
            let Some(n) = n else {
                return Err(mlua::Error::runtime(format!("bad argument #1 to '{name}' (expected integer between 1 and {})", i32::MAX)));
            };
            option.store(n as usize, Ordering::Relaxed);
        }
        Ok(option.load(Ordering::Relaxed) as i64)
    })
}

/// lua-cjson's json_enum_option over `names` (index 0 and 1 also taken as
/// false and true, and returned so): sets the option when an argument is
/// given, returns its value.
fn enum_option(lua: &Lua, name: &'static str, names: &'static [&'static str], option: &'static AtomicU8) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, a: mlua::Variadic<Value>| {
        match a.first() {
            None | Some(Value::Nil) => {}
            Some(Value::Boolean(b)) => option.store(*b as u8, Ordering::Relaxed),
            Some(Value::String(s)) if names.iter().any(|n| n.as_bytes() == &*s.as_bytes()) => {
                let i = names.iter().position(|n| n.as_bytes() == &*s.as_bytes()).unwrap_or(0);
                option.store(i as u8, Ordering::Relaxed);
            }
            Some(_) => {
                let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
                return Err(mlua::Error::runtime(format!("bad argument #1 to '{name}' (invalid option (expected one of {}))", list.join(", "))));
            }
        }
        let v = option.load(Ordering::Relaxed);
        Ok(match v {
            0 | 1 => Value::Boolean(v == 1),
            n => Value::String(lua.create_string(names[n as usize])?),
        })
    })
}

/// The `cjson` library of a new interpreter (its options at their defaults).
pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    reset();
    let cjson = lua.create_table()?;
    cjson.set("encode_max_depth", integer_option(lua, "encode_max_depth", &ENCODE_MAX_DEPTH)?)?;
    cjson.set("decode_max_depth", integer_option(lua, "decode_max_depth", &DECODE_MAX_DEPTH)?)?;
    cjson.set("encode_invalid_numbers", enum_option(lua, "encode_invalid_numbers", &["off", "on", "null"], &ENCODE_INVALID)?)?;
    cjson.set("encode_keep_buffer", enum_option(lua, "encode_keep_buffer", &["off", "on"], &KEEP_BUFFER)?)?;
    cjson.set("null", Value::LightUserData(LightUserData(std::ptr::null_mut())))?;
    cjson.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let mut out = Vec::new();
            encode(&v, &mut out, 0).map_err(mlua::Error::runtime)?;
            lua.create_string(&out)
        })?,
    )?;
    cjson.set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let bytes = s.as_bytes();
            let mut p = Parser { s: &bytes, i: 0 };
            p.ws();
            let v = p.value(lua, 0)?;
            p.ws();
            if p.i != p.s.len() {
                return Err(p.err("the end"));
            }
            Ok(v)
        })?,
    )?;
    globals.set("cjson", cjson)?;
    Ok(())
}

/// `depth`: the tables `v` is in.
fn encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(crate::protocol::reply::format_g(*i as f64, 14).as_bytes()),
        Value::Number(n) if !n.is_finite() => match ENCODE_INVALID.load(Ordering::Relaxed) {
            0 => return Err("Cannot serialise number: must not be NaN or Inf".into()),
            // Javascript's spellings.
            1 if n.is_nan() => out.extend_from_slice(b"NaN"),
            1 if *n < 0.0 => out.extend_from_slice(b"-Infinity"),
            1 => out.extend_from_slice(b"Infinity"),
            _ => out.extend_from_slice(b"null"),
        },
        Value::Number(n) => out.extend_from_slice(crate::protocol::reply::format_g(*n, 14).as_bytes()),
        Value::String(s) => string(&s.as_bytes(), out),
        Value::Table(t) => table(t, out, depth)?,
        other => return Err(format!("Cannot serialise {}: type not supported", other.type_name())),
    }
    Ok(())
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn table(t: &Table, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    let depth = depth + 1;
    if depth > ENCODE_MAX_DEPTH.load(Ordering::Relaxed) {
        return Err(format!("Cannot serialise, excessive nesting ({depth})"));
    }
    let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().filter_map(Result::ok).collect();
    // lua-cjson's array test: every key a positive integer, and not
    // excessively sparse (max > 2 * count with max > 10).
    let mut max = 0i64;
    let array = !pairs.is_empty()
        && pairs.iter().all(|(k, _)| {
            let n = match k {
                Value::Integer(i) => *i,
                Value::Number(f) if *f == f.floor() => *f as i64,
                _ => return false,
            };
            max = max.max(n);
            n >= 1
        })
        && !(max > 10 && max > 2 * pairs.len() as i64);
    if array {
        out.push(b'[');
        for i in 1..=max {
            if i > 1 {
                out.push(b',');
            }
            encode(&t.raw_get::<Value>(i).unwrap_or(Value::Nil), out, depth)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    for (n, (k, v)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match k {
            Value::String(s) => string(&s.as_bytes(), out),
            Value::Integer(i) => string(crate::protocol::reply::format_g(*i as f64, 14).as_bytes(), out),
            Value::Number(f) => string(crate::protocol::reply::format_g(*f, 14).as_bytes(), out),
            _ => return Err("Cannot serialise table: table key must be a number or string".into()),
        }
        out.push(b':');
        encode(v, out, depth)?;
    }
    out.push(b'}');
    Ok(())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, expected: &str) -> mlua::Error {
        mlua::Error::runtime(format!("Expected {} but found invalid token at character {}", expected, self.i + 1))
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn lit(&mut self, word: &[u8]) -> bool {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            return true;
        }
        false
    }
    /// `depth`: the objects and arrays the value is in.
    fn value(&mut self, lua: &Lua, depth: usize) -> mlua::Result<Value> {
        let Some(&c) = self.s.get(self.i) else {
            return Err(self.err("value"));
        };
        let depth = depth + matches!(c, b'{' | b'[') as usize;
        if depth > DECODE_MAX_DEPTH.load(Ordering::Relaxed) {
            return Err(mlua::Error::runtime(format!("Found too many nested data structures ({depth}) at character {}", self.i + 1)));
        }
        match c {
            b'{' => {
                self.i += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.lit(b"}") {
                    return Ok(Value::Table(t));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return Err(self.err("object key string"));
                    }
                    let k = self.string(lua)?;
                    self.ws();
                    if !self.lit(b":") {
                        return Err(self.err("colon"));
                    }
                    self.ws();
                    let v = self.value(lua, depth)?;
                    t.raw_set(k, v)?;
                    self.ws();
                    if self.lit(b",") {
                        continue;
                    }
                    if self.lit(b"}") {
                        return Ok(Value::Table(t));
                    }
                    return Err(self.err("comma or object end"));
                }
            }
            b'[' => {
                self.i += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.lit(b"]") {
                    return Ok(Value::Table(t));
                }
                let mut n = 1;
                loop {
                    self.ws();
                    let v = self.value(lua, depth)?;
                    t.raw_set(n, v)?;
                    n += 1;
                    self.ws();
                    if self.lit(b",") {
                        continue;
                    }
                    if self.lit(b"]") {
                        return Ok(Value::Table(t));
                    }
                    return Err(self.err("comma or array end"));
                }
            }
            b'"' => self.string(lua),
            b't' if self.lit(b"true") => Ok(Value::Boolean(true)),
            b'f' if self.lit(b"false") => Ok(Value::Boolean(false)),
            b'n' if self.lit(b"null") => Ok(Value::LightUserData(LightUserData(std::ptr::null_mut()))),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                text.parse::<f64>().map(Value::Number).map_err(|_| {
                    self.i = start;
                    self.err("value")
                })
            }
            _ => Err(self.err("value")),
        }
    }
    fn string(&mut self, lua: &Lua) -> mlua::Result<Value> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err(mlua::Error::runtime(format!("Expected value but found unexpected end of string at character {}", self.i + 1)));
            };
            self.i += 1;
            match c {
                b'"' => return lua.create_string(&out).map(Value::String),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else { return Err(self.err("escape")) };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(mut cp) = hex else { return Err(self.err("unicode escape")) };
                            self.i += 4;
                            if (0xD800..0xDC00).contains(&cp) && self.s.get(self.i..self.i + 2) == Some(b"\\u") {
                                if let Some(lo) =
                                    self.s.get(self.i + 2..self.i + 6).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u32::from_str_radix(h, 16).ok())
                                {
                                    if (0xDC00..0xE000).contains(&lo) {
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                        self.i += 6;
                                    }
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}
