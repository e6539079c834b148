//! `cjson`: lua-cjson 2.1.0 as Redis 7.0 bundles it, with its texts.
//!
//! Encoding: numbers as `%.14g` (`encode_number_precision`), strings with
//! `"` `\` `/` and control characters escaped, `cjson.null` and nil as
//! null; a table whose keys are all positive integers is an array up to
//! its largest key (holes as null) unless excessively sparse (largest key
//! above `safe` and above `ratio` times the key count: an error, or an
//! object with `encode_sparse_array(true)`), any other table (the empty
//! one too) an object in `next` order, number keys written as strings.
//!
//! Decoding: lua-cjson's tokenizer (errors name the token found:
//! "Expected comma or array end but found T_END at character 5"); numbers
//! through C's strtod, so with `decode_invalid_numbers` (on by default)
//! hex, `NaN`, `Infinity` and a leading `+` are numbers; the input ends at
//! its first NUL byte, as a C string does.
//!
//! Options (`encode_sparse_array`, `encode_max_depth`, `decode_max_depth`,
//! `encode_number_precision`, `encode_keep_buffer`,
//! `encode_invalid_numbers`, `decode_invalid_numbers`) are one set for the
//! one interpreter, reset with it. Nesting is also bounded by the C
//! library's stack (8000 slots) as in Redis, and by the thread's stack
//! (`lauxlib::stack_exhausted`, reached only with the depth limits raised
//! far past their defaults), with the same error text.

use std::sync::atomic::{AtomicI32, Ordering};

use mlua::{LightUserData, Lua, Table, Value, Variadic};

use super::lauxlib::{self, MAXCSTACK};

struct Options {
    sparse_convert: AtomicI32,
    sparse_ratio: AtomicI32,
    sparse_safe: AtomicI32,
    encode_max_depth: AtomicI32,
    decode_max_depth: AtomicI32,
    precision: AtomicI32,
    keep_buffer: AtomicI32,
    /// 0 off (an error), 1 on (`inf`, `nan`), 2 "null".
    encode_invalid: AtomicI32,
    decode_invalid: AtomicI32,
}

/// lua-cjson's defaults.
const DEFAULTS: [i32; 9] = [0, 2, 10, 1000, 1000, 14, 1, 0, 1];

static OPT: Options = Options {
    sparse_convert: AtomicI32::new(DEFAULTS[0]),
    sparse_ratio: AtomicI32::new(DEFAULTS[1]),
    sparse_safe: AtomicI32::new(DEFAULTS[2]),
    encode_max_depth: AtomicI32::new(DEFAULTS[3]),
    decode_max_depth: AtomicI32::new(DEFAULTS[4]),
    precision: AtomicI32::new(DEFAULTS[5]),
    keep_buffer: AtomicI32::new(DEFAULTS[6]),
    encode_invalid: AtomicI32::new(DEFAULTS[7]),
    decode_invalid: AtomicI32::new(DEFAULTS[8]),
};

impl Options {
    fn all(&self) -> [&AtomicI32; 9] {
        [
            &self.sparse_convert,
            &self.sparse_ratio,
            &self.sparse_safe,
            &self.encode_max_depth,
            &self.decode_max_depth,
            &self.precision,
            &self.keep_buffer,
            &self.encode_invalid,
            &self.decode_invalid,
        ]
    }
}

fn get(o: &AtomicI32) -> i32 {
    o.load(Ordering::Relaxed)
}

/// json_arg_init: at most `n` arguments.
fn arg_init(lua: &Lua, a: &[Value], n: usize) -> mlua::Result<()> {
    if a.len() > n {
        return Err(lauxlib::arg_error(lua, n as i32 + 1, "found too many arguments"));
    }
    Ok(())
}

fn is_nil(a: &[Value], i: usize) -> bool {
    matches!(a.get(i), None | Some(Value::Nil))
}

/// json_integer_option: sets the option from argument `i` when given (an
/// integer in min..=max; C's `int`), returns its value.
fn integer_option(lua: &Lua, a: &[Value], i: usize, o: &AtomicI32, min: i32, max: i32) -> mlua::Result<i64> {
    if !is_nil(a, i) {
        let v = lauxlib::check_integer(lua, a, i)? as i32;
        if !(min..=max).contains(&v) {
            return Err(lauxlib::arg_error(lua, 1, &format!("expected integer between {min} and {max}")));
        }
        o.store(v, Ordering::Relaxed);
    }
    Ok(get(o) as i64)
}

/// json_enum_option over `names` (a boolean sets 0 or `bool_true`),
/// returning the value as a boolean when it is 0 or `bool_true`.
fn enum_option(lua: &Lua, a: &[Value], i: usize, o: &AtomicI32, names: &[&str]) -> mlua::Result<Value> {
    const BOOL_TRUE: i32 = 1;
    match a.get(i) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => o.store(*b as i32 * BOOL_TRUE, Ordering::Relaxed),
        Some(_) => {
            // luaL_checkoption.
            let s = lauxlib::check_string(lua, a, i)?;
            let s = s.as_bytes();
            let Some(n) = names.iter().position(|n| n.as_bytes() == &s[..]) else {
                let msg = format!("invalid option '{}'", String::from_utf8_lossy(&s));
                return Err(lauxlib::arg_error(lua, i as i32 + 1, &msg));
            };
            o.store(n as i32, Ordering::Relaxed);
        }
    }
    let v = get(o);
    Ok(if v == 0 || v == BOOL_TRUE { Value::Boolean(v != 0) } else { Value::String(lua.create_string(names[v as usize])?) })
}

const OFF_ON: &[&str] = &["off", "on"];

/// The `cjson` library of a new interpreter (its options at their defaults).
pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    for (o, d) in OPT.all().iter().zip(DEFAULTS) {
        o.store(d, Ordering::Relaxed);
    }
    let cjson = lua.create_table()?;
    cjson.set(
        "encode_sparse_array",
        lua.create_function(|lua, a: Variadic<Value>| {
            arg_init(lua, &a, 3)?;
            let convert = enum_option(lua, &a, 0, &OPT.sparse_convert, OFF_ON)?;
            let ratio = integer_option(lua, &a, 1, &OPT.sparse_ratio, 0, i32::MAX)?;
            let safe = integer_option(lua, &a, 2, &OPT.sparse_safe, 0, i32::MAX)?;
            Ok((convert, ratio, safe))
        })?,
    )?;
    let int_fn = |o: &'static AtomicI32, max: i32| {
        lua.create_function(move |lua, a: Variadic<Value>| {
            arg_init(lua, &a, 1)?;
            integer_option(lua, &a, 0, o, 1, max)
        })
    };
    cjson.set("encode_max_depth", int_fn(&OPT.encode_max_depth, i32::MAX)?)?;
    cjson.set("decode_max_depth", int_fn(&OPT.decode_max_depth, i32::MAX)?)?;
    cjson.set("encode_number_precision", int_fn(&OPT.precision, 14)?)?;
    let enum_fn = |o: &'static AtomicI32, names: &'static [&'static str]| {
        lua.create_function(move |lua, a: Variadic<Value>| {
            arg_init(lua, &a, 1)?;
            enum_option(lua, &a, 0, o, names)
        })
    };
    // (keep_buffer: there is no kept buffer here; the setting is kept.)
    cjson.set("encode_keep_buffer", enum_fn(&OPT.keep_buffer, OFF_ON)?)?;
    cjson.set("encode_invalid_numbers", enum_fn(&OPT.encode_invalid, &["off", "on", "null"])?)?;
    cjson.set("decode_invalid_numbers", enum_fn(&OPT.decode_invalid, OFF_ON)?)?;
    cjson.set("null", Value::LightUserData(LightUserData(std::ptr::null_mut())))?;
    cjson.set("_NAME", "cjson")?;
    cjson.set("_VERSION", "2.1.0")?;
    cjson.set(
        "encode",
        lua.create_function(|lua, a: Variadic<Value>| {
            if a.len() != 1 {
                return Err(lauxlib::arg_error(lua, 1, "expected 1 argument"));
            }
            let mut out = Vec::new();
            let mut e = Encoder { mark: lauxlib::stack_mark(), out: &mut out };
            e.encode(lua, &a[0], 0, 1)?;
            lua.create_string(&out)
        })?,
    )?;
    cjson.set(
        "decode",
        lua.create_function(|lua, a: Variadic<Value>| {
            if a.len() != 1 {
                return Err(lauxlib::arg_error(lua, 1, "expected 1 argument"));
            }
            let s = lauxlib::check_string(lua, &a, 0)?;
            let bytes = s.as_bytes();
            if bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0) {
                return Err(lauxlib::error(lua, "JSON parser does not support UTF-16 or UTF-32"));
            }
            let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
            let mut p = Parser { s: &bytes[..end], i: 0, depth: 0, top: 1, mark: lauxlib::stack_mark() };
            let t = p.token();
            let v = p.value(lua, t)?;
            let t = p.token();
            if !matches!(t.kind, Tok::End) {
                return Err(p.expected(lua, "the end", &t));
            }
            Ok(v)
        })?,
    )?;
    globals.set("cjson", cjson)?;
    Ok(())
}

/// lua_typename of a value.
fn lua_type(v: &Value) -> &'static str {
    lauxlib::type_name(Some(v))
}

fn serialise_error(lua: &Lua, v: &Value, reason: &str) -> mlua::Error {
    lauxlib::error(lua, format!("Cannot serialise {}: {reason}", lua_type(v)))
}

fn number(lua: &Lua, v: &Value, n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    match get(&OPT.encode_invalid) {
        0 if !n.is_finite() => return Err(serialise_error(lua, v, "must not be NaN or Inf")),
        1 if n.is_nan() => {
            out.extend_from_slice(b"nan");
            return Ok(());
        }
        2 if !n.is_finite() => {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        _ => {}
    }
    out.extend_from_slice(crate::protocol::reply::format_g(n, get(&OPT.precision) as usize).as_bytes());
    Ok(())
}

struct Encoder<'a> {
    /// Where the recursion started on the thread's stack.
    mark: usize,
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    /// `depth`: the tables `v` is in; `top`: the C library's stack slots
    /// in use.
    fn encode(&mut self, lua: &Lua, v: &Value, depth: i32, top: usize) -> mlua::Result<()> {
        let out = &mut *self.out;
        match v {
            Value::String(s) => string(&s.as_bytes(), out),
            Value::Integer(i) => number(lua, v, *i as f64, out)?,
            Value::Number(n) => number(lua, v, *n, out)?,
            Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => out.extend_from_slice(b"null"),
            Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = depth + 1;
                if depth > get(&OPT.encode_max_depth) || top + 3 > MAXCSTACK || lauxlib::stack_exhausted(self.mark) {
                    return Err(lauxlib::error(lua, format!("Cannot serialise, excessive nesting ({depth})")));
                }
                self.table(lua, v, t, depth, top)?
            }
            other => return Err(serialise_error(lua, other, "type not supported")),
        }
        Ok(())
    }

    fn table(&mut self, lua: &Lua, v: &Value, t: &Table, depth: i32, top: usize) -> mlua::Result<()> {
        if let Some(len) = array_length(lua, v, t)? {
            self.out.push(b'[');
            for i in 1..=len {
                if i > 1 {
                    self.out.push(b',');
                }
                self.encode(lua, &t.raw_get::<Value>(i)?, depth, top + 1)?;
            }
            self.out.push(b']');
            return Ok(());
        }
        self.out.push(b'{');
        let mut first = true;
        for pair in t.pairs::<Value, Value>() {
            let (k, val) = pair?;
            let out = &mut *self.out;
            if !first {
                out.push(b',');
            }
            first = false;
            match &k {
                Value::Integer(_) | Value::Number(_) => {
                    let n = if let Value::Integer(i) = k { i as f64 } else { lauxlib::to_number(lua, std::slice::from_ref(&k), 0)?.unwrap_or(0.0) };
                    out.push(b'"');
                    number(lua, &k, n, out)?;
                    out.extend_from_slice(b"\":");
                }
                Value::String(s) => {
                    string(&s.as_bytes(), out);
                    out.push(b':');
                }
                other => return Err(serialise_error(lua, other, "table key must be a number or string")),
            }
            self.encode(lua, &val, depth, top + 2)?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
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

/// lua_array_length: the largest key when every key is a positive
/// integer (C `int`), None for an object; an excessively sparse array is
/// an error (or an object when converting).
fn array_length(lua: &Lua, v: &Value, t: &Table) -> mlua::Result<Option<i32>> {
    let (mut max, mut items) = (0i32, 0i32);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let k = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if k == 0.0 || k.floor() != k || k < 1.0 {
            return Ok(None);
        }
        if k > max as f64 {
            max = if k <= i32::MAX as f64 { k as i32 } else { i32::MIN };
        }
        items = items.wrapping_add(1);
    }
    let ratio = get(&OPT.sparse_ratio);
    if ratio > 0 && max > items.wrapping_mul(ratio) && max > get(&OPT.sparse_safe) {
        if get(&OPT.sparse_convert) == 0 {
            return Err(serialise_error(lua, v, "excessively sparse array"));
        }
        return Ok(None);
    }
    Ok((max > 0).then_some(max))
}

enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

struct Token {
    kind: Tok,
    /// 0-based.
    index: usize,
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// The arrays and objects open.
    depth: i32,
    /// The C library's stack slots in use.
    top: usize,
    /// Where the recursion started on the thread's stack.
    mark: usize,
}

fn hex4(s: &[u8]) -> Option<u32> {
    let h = s.get(..4)?;
    h.iter().try_fold(0u32, |acc, &c| Some((acc << 4) | (c as char).to_digit(16)?))
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn expected(&self, lua: &Lua, what: &str, t: &Token) -> mlua::Error {
        lauxlib::error(lua, format!("Expected {what} but found {} at character {}", t.kind.name(), t.index + 1))
    }

    fn token(&mut self) -> Token {
        while matches!(self.at(self.i), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
        let index = self.i;
        let c = self.at(self.i);
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(kind) = single {
            self.i += 1;
            return Token { kind, index };
        }
        let kind = match c {
            0 => return Token { kind: Tok::End, index },
            b'"' => {
                let mut t = self.string();
                if matches!(t.kind, Tok::Str(_)) {
                    t.index = index;
                }
                return t;
            }
            b'-' | b'0'..=b'9' => {
                if get(&OPT.decode_invalid) == 0 && self.invalid_number() {
                    Tok::Error("invalid number")
                } else {
                    return self.number();
                }
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                let rest = &self.s[self.i..];
                if rest.starts_with(b"true") {
                    self.i += 4;
                    Tok::Bool(true)
                } else if rest.starts_with(b"false") {
                    self.i += 5;
                    Tok::Bool(false)
                } else if rest.starts_with(b"null") {
                    self.i += 4;
                    Tok::Null
                } else if get(&OPT.decode_invalid) != 0 && self.invalid_number() {
                    return self.number();
                } else {
                    Tok::Error("invalid token")
                }
            }
            _ => Tok::Error("invalid token"),
        };
        Token { kind, index }
    }

    /// json_is_invalid_number: strtod would take it, JSON would not.
    fn invalid_number(&self) -> bool {
        let mut p = self.i;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        let rest = self.s.get(p..p + 3).map(|r| r.to_ascii_lowercase());
        matches!(rest.as_deref(), Some(b"inf") | Some(b"nan"))
    }

    fn number(&mut self) -> Token {
        let index = self.i;
        match strtod_prefix(&self.s[self.i..]) {
            Some((n, len)) => {
                self.i += len;
                Token { kind: Tok::Num(n), index }
            }
            None => Token { kind: Tok::Error("invalid number"), index },
        }
    }

    fn string(&mut self) -> Token {
        self.i += 1;
        let mut out = Vec::new();
        let error = |p: &Self, e| Token { kind: Tok::Error(e), index: p.i };
        loop {
            let c = self.at(self.i);
            match c {
                b'"' => break,
                0 => return error(self, "unexpected end of string"),
                b'\\' => {
                    let e = self.at(self.i + 1);
                    let ch = match e {
                        b'"' | b'\\' | b'/' => e,
                        b'b' => 0x08,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => 0x0c,
                        b'r' => b'\r',
                        b'u' => {
                            if self.unicode(&mut out).is_none() {
                                return error(self, "invalid unicode escape code");
                            }
                            continue;
                        }
                        _ => return error(self, "invalid escape code"),
                    };
                    out.push(ch);
                    self.i += 2;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        self.i += 1;
        Token { kind: Tok::Str(out), index: 0 }
    }

    /// A `\uXXXX` escape (a surrogate pair: two) as UTF-8.
    fn unicode(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let mut cp = hex4(self.s.get(self.i + 2..)?)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 || self.at(self.i + 6) != b'\\' || self.at(self.i + 7) != b'u' {
                return None;
            }
            let low = hex4(self.s.get(self.i + 8..)?)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        // codepoint_to_utf8 (surrogates never reach here unpaired).
        let mut b = [0u8; 4];
        let n = match cp {
            0..=0x7F => {
                b[0] = cp as u8;
                1
            }
            0x80..=0x7FF => {
                b[0] = (cp >> 6) as u8 | 0xC0;
                b[1] = (cp & 0x3F) as u8 | 0x80;
                2
            }
            0x800..=0xFFFF => {
                b[0] = (cp >> 12) as u8 | 0xE0;
                b[1] = ((cp >> 6) & 0x3F) as u8 | 0x80;
                b[2] = (cp & 0x3F) as u8 | 0x80;
                3
            }
            _ => {
                b[0] = (cp >> 18) as u8 | 0xF0;
                b[1] = ((cp >> 12) & 0x3F) as u8 | 0x80;
                b[2] = ((cp >> 6) & 0x3F) as u8 | 0x80;
                b[3] = (cp & 0x3F) as u8 | 0x80;
                4
            }
        };
        out.extend_from_slice(&b[..n]);
        self.i += len;
        Some(())
    }

    /// json_decode_descend: one level deeper, `slots` more on the C stack.
    fn descend(&mut self, lua: &Lua, slots: usize) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth <= get(&OPT.decode_max_depth) && self.top + slots <= MAXCSTACK && !lauxlib::stack_exhausted(self.mark) {
            return Ok(());
        }
        Err(lauxlib::error(lua, format!("Found too many nested data structures ({}) at character {}", self.depth, self.i)))
    }

    fn value(&mut self, lua: &Lua, t: Token) -> mlua::Result<Value> {
        Ok(match t.kind {
            Tok::Str(s) => Value::String(lua.create_string(&s)?),
            Tok::Num(n) => Value::Number(n),
            Tok::Bool(b) => Value::Boolean(b),
            Tok::Null => Value::LightUserData(LightUserData(std::ptr::null_mut())),
            Tok::ObjBegin => Value::Table(self.object(lua)?),
            Tok::ArrBegin => Value::Table(self.array(lua)?),
            _ => return Err(self.expected(lua, "value", &t)),
        })
    }

    fn object(&mut self, lua: &Lua) -> mlua::Result<Table> {
        self.descend(lua, 3)?;
        let table = lua.create_table()?;
        self.top += 1;
        let mut t = self.token();
        if matches!(t.kind, Tok::ObjEnd) {
            self.ascend();
            return Ok(table);
        }
        loop {
            let Tok::Str(key) = t.kind else {
                return Err(self.expected(lua, "object key string", &t));
            };
            let key = lua.create_string(&key)?;
            self.top += 1;
            t = self.token();
            if !matches!(t.kind, Tok::Colon) {
                return Err(self.expected(lua, "colon", &t));
            }
            t = self.token();
            let v = self.value(lua, t)?;
            table.raw_set(key, v)?;
            self.top -= 1;
            match self.after_member(lua, |k| matches!(k, Tok::ObjEnd), "comma or object end")? {
                Some(next) => t = next,
                None => return Ok(table),
            }
        }
    }

    fn array(&mut self, lua: &Lua) -> mlua::Result<Table> {
        self.descend(lua, 2)?;
        let table = lua.create_table()?;
        self.top += 1;
        let mut t = self.token();
        if matches!(t.kind, Tok::ArrEnd) {
            self.ascend();
            return Ok(table);
        }
        let mut i = 1;
        loop {
            let v = self.value(lua, t)?;
            table.raw_set(i, v)?;
            i += 1;
            match self.after_member(lua, |k| matches!(k, Tok::ArrEnd), "comma or array end")? {
                Some(next) => t = next,
                None => return Ok(table),
            }
        }
    }

    /// After a member: the closing token ends the container (None), a
    /// comma brings the next member's first token.
    fn after_member(&mut self, lua: &Lua, close: fn(&Tok) -> bool, what: &str) -> mlua::Result<Option<Token>> {
        let t = self.token();
        if close(&t.kind) {
            self.ascend();
            return Ok(None);
        }
        if !matches!(t.kind, Tok::Comma) {
            return Err(self.expected(lua, what, &t));
        }
        Ok(Some(self.token()))
    }

    /// Back out of a level: its table is now the value.
    fn ascend(&mut self) {
        self.depth -= 1;
        self.top -= 1;
    }
}

/// C's strtod (glibc) on a prefix of `s`: the number and the bytes it
/// took, or None when there is none. Decimal and hex (`0x1.8p3`) forms,
/// `inf`/`infinity`, `nan`/`nan(chars)`, any case, with a sign.
fn strtod_prefix(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let negative = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let sign = |v: f64| if negative { -v } else { v };
    let rest = &s[i..];
    let lower = |n: usize| rest.get(..n).map(|r| r.to_ascii_lowercase());
    if lower(3).as_deref() == Some(b"inf") {
        let len = if lower(8).as_deref() == Some(b"infinity") { 8 } else { 3 };
        return Some((sign(f64::INFINITY), i + len));
    }
    if lower(3).as_deref() == Some(b"nan") {
        let mut len = 3;
        if rest.get(3) == Some(&b'(') {
            let inner = rest[4..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            if rest.get(4 + inner) == Some(&b')') {
                len = 5 + inner;
            }
        }
        return Some((sign(f64::NAN), i + len));
    }
    let is_hex = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_hexdigit());
    if rest.first() == Some(&b'0') && matches!(rest.get(1), Some(b'x' | b'X')) && (is_hex(rest.get(2)) || (rest.get(2) == Some(&b'.') && is_hex(rest.get(3)))) {
        let (v, len) = hex_float(&rest[2..]);
        return Some((sign(v), i + 2 + len));
    }
    let digits = |from: usize| rest[from.min(rest.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(0);
    let mut j = int;
    let mut frac = 0;
    if rest.get(j) == Some(&b'.') {
        frac = digits(j + 1);
        if int + frac > 0 {
            j += 1 + frac;
        }
    }
    if int + frac == 0 {
        return None;
    }
    if matches!(rest.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(rest.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        let e = digits(k);
        if e > 0 {
            j = k + e;
        }
    }
    let text = std::str::from_utf8(&rest[..j]).ok()?;
    let v: f64 = text.parse().ok()?;
    Some((sign(v), i + j))
}

/// A hex float's digits after "0x": the value and the bytes taken.
fn hex_float(s: &[u8]) -> (f64, usize) {
    let (mut v, mut scale, mut i) = (0f64, 0i32, 0);
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(16)) {
        v = v * 16.0 + d as f64;
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(16)) {
            v = v * 16.0 + d as f64;
            scale -= 4;
            i += 1;
        }
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut k = i + 1;
        let neg = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        let n = s[k.min(s.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n > 0 {
            let e: i32 = std::str::from_utf8(&s[k..k + n]).ok().and_then(|t| t.parse().ok()).unwrap_or(i32::MAX / 2);
            scale = scale.saturating_add(if neg { -e } else { e });
            i = k + n;
        }
    }
    (v * 2f64.powi(scale), i)
}

#[cfg(test)]
mod tests {
    use super::strtod_prefix;

    #[test]
    fn strtod_takes_the_longest_number_prefix() {
        assert_eq!(strtod_prefix(b"12,"), Some((12.0, 2)));
        assert_eq!(strtod_prefix(b"-1.5e3]"), Some((-1500.0, 6)));
        assert_eq!(strtod_prefix(b"1e"), Some((1.0, 1)));
        assert_eq!(strtod_prefix(b"0x10"), Some((16.0, 4)));
        assert_eq!(strtod_prefix(b"0x"), Some((0.0, 1)));
        assert_eq!(strtod_prefix(b"Infinity"), Some((f64::INFINITY, 8)));
        assert_eq!(strtod_prefix(b"-inf"), Some((f64::NEG_INFINITY, 4)));
        assert!(strtod_prefix(b"nan(x1)").is_some_and(|(v, n)| v.is_nan() && n == 7));
        assert_eq!(strtod_prefix(b"-"), None);
        assert_eq!(strtod_prefix(b"."), None);
    }
}
