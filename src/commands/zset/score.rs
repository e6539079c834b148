//! Score parsing as Redis does it with C's `strtod`: strictly for scores,
//! weights and increments (`string2d`: the whole string, no leading space,
//! no overflow, no underflow to zero, no NaN), loosely for the ends of a
//! score range (`zslParseRange`: leading spaces skipped, the number may end
//! at a NUL byte, overflow is `inf`). Rust's `f64::from_str` rounds as
//! glibc does, so only the syntax is C's here; hexadecimal floats
//! (`0x1p3`), which strtod takes, are read too.

/// C's `isspace` in the "C" locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// What `strtod` read: the value, the bytes it consumed (0: no number) and
/// whether it set ERANGE (overflow, or a non-zero number rounding to 0).
struct Parsed {
    value: f64,
    consumed: usize,
    range_error: bool,
}

fn starts_with_ic(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// An optional sign at `s[*i]`, stepped over; true for `-`.
fn sign_at(s: &[u8], i: &mut usize) -> bool {
    match s.get(*i) {
        Some(&c) if c == b'-' || c == b'+' => {
            *i += 1;
            c == b'-'
        }
        _ => false,
    }
}

fn strtod(s: &[u8]) -> Parsed {
    let none = Parsed { value: 0.0, consumed: 0, range_error: false };
    let mut i = s.iter().take_while(|&&c| is_space(c)).count();
    let neg = sign_at(s, &mut i);
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    if starts_with_ic(rest, b"inf") {
        let n = if starts_with_ic(rest, b"infinity") { 8 } else { 3 };
        return Parsed { value: sign * f64::INFINITY, consumed: i + n, range_error: false };
    }
    if starts_with_ic(rest, b"nan") {
        let mut n = 3;
        if rest.get(3) == Some(&b'(') {
            let close = rest[4..].iter().position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'));
            if let Some(p) = close {
                if rest[4 + p] == b')' {
                    n = 4 + p + 1;
                }
            }
        }
        return Parsed { value: f64::NAN, consumed: i + n, range_error: false };
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((v, n)) = hex(&rest[2..]) {
            return Parsed { value: sign * v, consumed: i + 2 + n, range_error: v.is_infinite() };
        }
        // "0x" without hex digits: strtod reads the "0".
        return Parsed { value: sign * 0.0, consumed: i + 1, range_error: false };
    }
    let start = i;
    let mut digits = 0;
    let mut nonzero = false;
    while i < s.len() && s[i].is_ascii_digit() {
        nonzero |= s[i] != b'0';
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            nonzero |= s[i] != b'0';
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return none;
    }
    if i < s.len() && (s[i] | 0x20) == b'e' {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    let text = std::str::from_utf8(&s[start..i]).expect("ASCII digits");
    let value: f64 = text.parse().unwrap_or(0.0);
    let range_error = value.is_infinite() || (value == 0.0 && nonzero);
    Parsed { value: sign * value, consumed: i, range_error }
}

/// A hexadecimal float after its `0x`: value and bytes read, None when no
/// hex digit comes.
fn hex(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let mut mant: f64 = 0.0;
    let mut exp: i32 = 0;
    let mut digits = 0;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        mant = mant * 16.0 + f64::from((s[i] as char).to_digit(16)?);
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        let mut j = i + 1;
        let mut frac = 0;
        while j < s.len() && s[j].is_ascii_hexdigit() {
            mant = mant * 16.0 + f64::from((s[j] as char).to_digit(16)?);
            exp -= 4;
            j += 1;
            frac += 1;
        }
        if digits + frac > 0 {
            i = j;
            digits += frac;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'p' {
        let mut j = i + 1;
        let neg = sign_at(s, &mut j);
        if j < s.len() && s[j].is_ascii_digit() {
            let mut e: i32 = 0;
            while j < s.len() && s[j].is_ascii_digit() {
                e = e.saturating_mul(10).saturating_add(i32::from(s[j] - b'0'));
                j += 1;
            }
            exp = exp.saturating_add(if neg { -e } else { e });
            i = j;
        }
    }
    Some((mant * 2f64.powi(exp), i))
}

/// Redis's `string2d` (scores, increments, weights): None is Redis's
/// "not a valid float" of the caller.
pub fn parse_strict(s: &[u8]) -> Option<f64> {
    if let Some(v) = small_integer(s) {
        return Some(v);
    }
    if s.is_empty() || is_space(s[0]) {
        return None;
    }
    let p = strtod(s);
    if p.consumed != s.len() || p.value.is_nan() || (p.range_error && (p.value.is_infinite() || p.value == 0.0)) {
        return None;
    }
    Some(p.value)
}

/// Up to 15 decimal digits after an optional `-` (redis-benchmark's ZADD
/// score `0`, most scores clients send): the value strtod gives, every such
/// integer being a double (`-0` is -0.0 as there), read without the general
/// parse (~600 instructions for "0": the syntax walk, UTF-8 check and
/// `f64::from_str`). None: anything else, for `strtod`.
#[inline]
fn small_integer(s: &[u8]) -> Option<f64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    let v = n as f64;
    Some(if digits.len() < s.len() { -v } else { v })
}

/// C's `sscanf(s, "%lg")` over a C string (up to the first NUL): the
/// longest number prefix after leading white space (hex floats, `inf`,
/// `nan`, an overflow as +-inf), None where no number comes. Redis reads the
/// text scores of its files so (`rdbLoadDoubleValue`, `zzlStrtod`), checking
/// their structure but never their texts: a corrupt "1.\xff" loads as 1.
pub fn c_prefix(s: &[u8]) -> Option<f64> {
    let s = s.iter().position(|&c| c == 0).map_or(s, |n| &s[..n]);
    let p = strtod(s);
    (p.consumed > 0).then_some(p.value)
}

/// A listpack score saved as text, read as Redis's `zzlGetScore` reads it
/// (`zzlStrtod`): strtod over the first 127 bytes, 0 where no number comes.
pub fn listpack_text(s: &[u8]) -> f64 {
    c_prefix(&s[..s.len().min(127)]).unwrap_or(0.0)
}

/// One end of a score range after its optional `(` (`zslParseRange`):
/// strtod up to the end of the C string.
pub fn parse_range_item(s: &[u8]) -> Option<f64> {
    let p = strtod(s);
    let rest = &s[p.consumed..];
    if !(rest.is_empty() || rest[0] == 0) || p.value.is_nan() {
        return None;
    }
    Some(p.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_as_string2d() {
        assert_eq!(parse_strict(b"1.5"), Some(1.5));
        assert_eq!(parse_strict(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_strict(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_strict(b"1e300"), Some(1e300));
        assert_eq!(parse_strict(b".5"), Some(0.5));
        assert_eq!(parse_strict(b"5."), Some(5.0));
        assert_eq!(parse_strict(b"0x10"), Some(16.0));
        assert_eq!(parse_strict(b"0x1p3"), Some(8.0));
        assert_eq!(parse_strict(b"0e999"), Some(0.0));
        assert!(parse_strict(b"-0").unwrap().is_sign_negative());
        // The small-integer path gives strtod's value, bit for bit.
        for s in ["0", "-0", "7", "-7", "007", "-007", "123456789012345", "-999999999999999", "1234567890123456", "--1", "-", "1-", "+1"] {
            let fast = small_integer(s.as_bytes()).map(f64::to_bits);
            let slow = {
                let p = strtod(s.as_bytes());
                (p.consumed == s.len() && !p.value.is_nan() && !p.range_error).then_some(p.value.to_bits())
            };
            if fast.is_some() {
                assert_eq!(fast, slow, "{s}");
            }
            assert_eq!(parse_strict(s.as_bytes()).map(f64::to_bits), slow, "{s}");
        }
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"1e400", b"1e-400", b"abc", b"1e", b"1\x002", b"-", b"."] {
            assert_eq!(parse_strict(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn range_items_as_zsl_parse_range() {
        assert_eq!(parse_range_item(b""), Some(0.0));
        assert_eq!(parse_range_item(b" 2"), Some(2.0));
        assert_eq!(parse_range_item(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_range_item(b"3\x00x"), Some(3.0));
        assert_eq!(parse_range_item(b"nan"), None);
        assert_eq!(parse_range_item(b"x"), None);
        assert_eq!(parse_range_item(b"1 "), None);
    }
}
