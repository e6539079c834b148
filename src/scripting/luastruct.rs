//! `struct`: Roberto Ierusalimschy's struct library (struct.c 1.4, as Redis
//! 7.0 bundles it, with its size-overflow check): `struct.pack(fmt, ...)`,
//! `struct.unpack(fmt, data[, pos])`, `struct.size(fmt)`.
//!
//! Formats: `>` `<` endianness (native: little), `![n]` alignment (default
//! 8), `x` padding, `b/B h/H l/L T i[n]/I[n]` integers (1, 2, 8, 8 and n
//! bytes, n up to 32, default 4), `f` `d` floats, `c[n]` n chars (`c0`: the
//! whole string when packing, the previous number's length when
//! unpacking), `s` a zero-terminated string, ` ` ignored. The format stops
//! at its first NUL byte, as a C string does. Numbers convert to integers
//! as C does on x86-64 (truncation; out of range: the "indefinite" value).

use mlua::{Lua, Table, Value, Variadic};

use super::lauxlib::{self, MAXCSTACK};

/// The alignment `!` sets without a number (the C struct's MAXALIGN).
const MAXALIGN: usize = 8;
/// The largest integer size (`i32`).
const MAXINTSIZE: usize = 32;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Big,
    Little,
}

struct Header {
    endian: Endian,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header { endian: Endian::Little, align: 1 }
    }
}

pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let m = lua.create_table()?;
    m.set("pack", lua.create_function(|lua, a: Variadic<Value>| pack(lua, &a))?)?;
    m.set("unpack", lua.create_function(|lua, a: Variadic<Value>| unpack(lua, &a))?)?;
    m.set("size", lua.create_function(|lua, a: Variadic<Value>| size(lua, &a))?)?;
    globals.set("struct", m)
}

/// The format: its bytes up to the first NUL.
struct Fmt {
    b: Vec<u8>,
    i: usize,
}

impl Fmt {
    fn new(lua: &Lua, args: &[Value]) -> mlua::Result<Fmt> {
        let s = lauxlib::check_string(lua, args, 0)?;
        let b = s.as_bytes();
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(Fmt { b: b[..end].to_vec(), i: 0 })
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.b.get(self.i).copied()?;
        self.i += 1;
        Some(c)
    }

    /// getnum: the digits here, or `df`.
    fn num(&mut self, lua: &Lua, df: usize) -> mlua::Result<usize> {
        if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while let Some(&c) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(lauxlib::error(lua, "integral size overflow"));
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a as usize)
    }

    /// optsize: the size of option `opt` (0 for the others).
    fn size(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.num(lua, 1)?,
            b'i' | b'I' => {
                let sz = self.num(lua, 4)?;
                if sz > MAXINTSIZE {
                    return Err(lauxlib::error(lua, format!("integral size {sz} is larger than limit of {MAXINTSIZE}")));
                }
                sz
            }
            _ => 0,
        })
    }

    /// controloptions: endianness, alignment, spaces; any other option is
    /// invalid.
    fn control(&mut self, lua: &Lua, opt: u8, h: &mut Header) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => h.endian = Endian::Big,
            b'<' => h.endian = Endian::Little,
            b'!' => {
                let a = self.num(lua, MAXALIGN)?;
                if !a.is_power_of_two() {
                    return Err(lauxlib::error(lua, format!("alignment {a} is not a power of 2")));
                }
                h.align = a;
            }
            other => {
                let msg = [&b"invalid format option '"[..], &[other], b"'"].concat();
                return Err(lauxlib::arg_error(lua, 1, &String::from_utf8_lossy(&msg)));
            }
        }
        Ok(())
    }
}

/// gettoalign: the padding before an option of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & size.wrapping_sub(1))) & size.wrapping_sub(1)
}

/// `bytes` (native order: little-endian) in the header's order.
fn ordered(mut bytes: Vec<u8>, endian: Endian) -> Vec<u8> {
    if endian == Endian::Big {
        bytes.reverse();
    }
    bytes
}

/// C's `(unsigned long)d` on x86-64 for a non-negative or NaN `d`.
fn to_u64(n: f64) -> u64 {
    if n >= lauxlib::TWO_63 {
        (lauxlib::to_i64(n - lauxlib::TWO_63) as u64) ^ (1 << 63)
    } else {
        lauxlib::to_i64(n) as u64
    }
}

/// pack's luaL_checknumber: the slot after the arguments holds the nil
/// pack pushes as a mark.
fn pack_number(lua: &Lua, args: &[Value], i: usize) -> mlua::Result<f64> {
    if i == args.len() {
        return Err(lauxlib::arg_error(lua, i as i32 + 1, "number expected, got nil"));
    }
    lauxlib::check_number(lua, args, i)
}

fn pack(lua: &Lua, args: &[Value]) -> mlua::Result<mlua::LuaString> {
    let mut fmt = Fmt::new(lua, args)?;
    let mut h = Header::new();
    let mut arg = 1; // 0-based: the argument after the format
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(lua, opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = pack_number(lua, args, arg)?;
                arg += 1;
                let mut value = if n < 0.0 { lauxlib::to_i64(n) as u64 } else { to_u64(n) };
                let mut bytes = vec![0u8; size];
                for b in bytes.iter_mut() {
                    *b = value as u8;
                    value = value.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&ordered(bytes, h.endian));
            }
            b'x' => out.push(0),
            b'f' => {
                let f = pack_number(lua, args, arg)? as f32;
                arg += 1;
                out.extend_from_slice(&ordered(f.to_le_bytes().to_vec(), h.endian));
            }
            b'd' => {
                let d = pack_number(lua, args, arg)?;
                arg += 1;
                out.extend_from_slice(&ordered(d.to_le_bytes().to_vec(), h.endian));
            }
            b'c' | b's' => {
                if arg == args.len() {
                    return Err(lauxlib::arg_error(lua, arg as i32 + 1, "string expected, got nil"));
                }
                let s = lauxlib::check_string(lua, args, arg)?;
                arg += 1;
                let s = s.as_bytes();
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // luaL_argcheck names the argument after the string.
                    return Err(lauxlib::arg_error(lua, arg as i32 + 1, "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => fmt.control(lua, opt, &mut h)?,
        }
    }
    lua.create_string(&out)
}

/// getinteger: `size` bytes in `endian` order as a number.
fn get_integer(bytes: &[u8], endian: Endian, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | b as u64;
    match endian {
        Endian::Big => bytes.iter().for_each(|&b| push(b)),
        Endian::Little => bytes.iter().rev().for_each(|&b| push(b)),
    }
    if !signed {
        return l as f64;
    }
    // x86 masks a shift count to 6 bits.
    let mask = u64::MAX << ((bytes.len() * 8).wrapping_sub(1) & 63);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: &[Value]) -> mlua::Result<Variadic<Value>> {
    let mut fmt = Fmt::new(lua, args)?;
    let data = lauxlib::check_string(lua, args, 1)?;
    // (As a size_t: only 0 is refused, a negative offset is past the data.)
    let mut pos = lauxlib::opt_integer(lua, args, 2, 1)? as usize;
    if pos == 0 {
        return Err(lauxlib::arg_error(lua, 3, "offset must be 1 or greater"));
    }
    pos -= 1;
    let data = data.as_bytes();
    let ld = data.len();
    let mut h = Header::new();
    // The C stack: the format and the data, then the results.
    let mut stack: Vec<Value> = vec![args[0].clone(), args[1].clone()];
    let short = |lua: &Lua| lauxlib::arg_error(lua, 2, "data string too short");
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(lua, opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        // (Beyond the data, which C would read anyway when pos+size wraps.)
        if pos.wrapping_add(size) > ld || pos > ld {
            return Err(short(lua));
        }
        if stack.len() + 1 > MAXCSTACK {
            return Err(lauxlib::error(lua, "stack overflow (too many results)"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(&data[pos..pos + size], h.endian, opt.is_ascii_lowercase());
                stack.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let f = if h.endian == Endian::Big { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) };
                stack.push(Value::Number(f as f64));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let d = if h.endian == Endian::Big { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) };
                stack.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    let top = stack.last().cloned().unwrap_or(Value::Nil);
                    let Some(n) = lauxlib::to_number(lua, &[top], 0)? else {
                        return Err(lauxlib::error(lua, "format 'c0' needs a previous size"));
                    };
                    size = if n < 0.0 { lauxlib::to_i64(n) as usize } else { to_u64(n) as usize };
                    stack.pop();
                    if pos.wrapping_add(size) > ld || size > ld {
                        return Err(short(lua));
                    }
                }
                stack.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&c| c == 0) else {
                    return Err(lauxlib::error(lua, "unfinished string in data"));
                };
                size = end + 1;
                stack.push(Value::String(lua.create_string(&data[pos..pos + end])?));
            }
            _ => fmt.control(lua, opt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    stack.push(Value::Integer(pos.wrapping_add(1) as i64));
    // lua_gettop(L) - 2 results: the top ones.
    let n = stack.len().saturating_sub(2);
    Ok(Variadic::from_iter(stack.split_off(stack.len() - n)))
}

fn size(lua: &Lua, args: &[Value]) -> mlua::Result<i64> {
    let mut fmt = Fmt::new(lua, args)?;
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next() {
        let size = fmt.size(lua, opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if opt == b's' {
            return Err(lauxlib::arg_error(lua, 1, "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(lauxlib::arg_error(lua, 1, "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            fmt.control(lua, opt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(pos as i64)
}
