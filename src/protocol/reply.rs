//! Reply encoder. Handlers call these methods; the RESP version of the
//! client decides the bytes (RESP2 maps, doubles and nulls are downgraded the
//! way Redis downgrades them).

pub struct Reply<'a> {
    pub buf: &'a mut Vec<u8>,
    pub resp: u8,
    /// Set when the handler replied with an error (for errorstats / failed_calls).
    pub error_prefix: Option<ErrorKind>,
    /// The error replied was counted in errorstats where it arose (a
    /// script's command: Redis's ERR_REPLY_FLAG_NO_STATS_UPDATE): the
    /// command still counts as failed.
    pub error_stats_counted: bool,
}

/// The first word of the last error reply (`ERR`, `WRONGTYPE`, ...), kept as
/// a small inline string so recording it needs no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorKind {
    pub bytes: [u8; 24],
    pub len: u8,
}

impl ErrorKind {
    pub fn from_error(msg: &[u8]) -> ErrorKind {
        let word_end = msg.iter().position(|&c| c == b' ').unwrap_or(msg.len()).min(24);
        let mut bytes = [0u8; 24];
        bytes[..word_end].copy_from_slice(&msg[..word_end]);
        ErrorKind { bytes, len: word_end as u8 }
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("ERR")
    }
}

/// "00" to "99", two bytes each: `len_line`'s digits, two at a time.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Longest value `Reply::bulk` writes through `short_bulk`.
const SHORT_BULK_MAX: usize = 16;

impl<'a> Reply<'a> {
    pub fn new(buf: &'a mut Vec<u8>, resp: u8) -> Self {
        Reply { buf, resp, error_prefix: None, error_stats_counted: false }
    }

    /// `<prefix><n>\r\n`: the line is built right-aligned in a stack
    /// buffer, two digits at a time from a table (the digit count and a
    /// division per digit were ~140 instructions of an LPUSH's reply with a
    /// six-digit length), and 24 bytes from its start are copied whole (a
    /// fixed-size copy the compiler inlines), the length then set to the
    /// line's: one capacity check, no call to memcpy for a variable length.
    /// The stores into the stack buffer go through a pointer: indexed, each
    /// was bounds-checked (the compiler cannot see that at most 22 bytes go
    /// before the CRLF), ~20 of the line's ~73 instructions at five digits.
    #[inline]
    fn len_line(&mut self, prefix: u8, n: i64) {
        const MAX: usize = 24; // prefix + '-' + 19 digits + CRLF = 23
        let mut line = [0u8; 2 * MAX];
        line[MAX - 2] = b'\r';
        line[MAX - 1] = b'\n';
        let mut i = MAX - 2;
        let mut u = n.unsigned_abs();
        let p = line.as_mut_ptr();
        let pairs = DIGIT_PAIRS.as_ptr();
        // SAFETY: `u` has at most 20 digits (u64) and at most 19 here (the
        // magnitude of an i64), so with the sign and the prefix at most 21
        // bytes are stored below `MAX - 2`: `i` stays >= 1, every store is
        // inside `line`. `DIGIT_PAIRS` (200 bytes) is read at `2 * (u % 100)`
        // and at `2 * u` for `10 <= u < 100`: two bytes below 200.
        unsafe {
            while u >= 100 {
                let d = (u % 100) as usize * 2;
                u /= 100;
                i -= 2;
                std::ptr::copy_nonoverlapping(pairs.add(d), p.add(i), 2);
            }
            if u >= 10 {
                i -= 2;
                std::ptr::copy_nonoverlapping(pairs.add(u as usize * 2), p.add(i), 2);
            } else {
                i -= 1;
                *p.add(i) = b'0' + u as u8;
            }
            if n < 0 {
                i -= 1;
                *p.add(i) = b'-';
            }
            i -= 1;
            *p.add(i) = prefix;
        }
        self.buf.reserve(MAX);
        let len = self.buf.len();
        // SAFETY: `reserve` made room for MAX more bytes past `len`; the MAX
        // bytes copied from `line[i..i + MAX]` are in bounds (`i >= 1`, the
        // buffer is 2 * MAX long) and initialised, and the length grows by
        // the line's `MAX - i <= MAX` bytes only.
        unsafe {
            std::ptr::copy_nonoverlapping(line.as_ptr().add(i), self.buf.as_mut_ptr().add(len), MAX);
            self.buf.set_len(len + MAX - i);
        }
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }
    /// `msg` is the whole error text including its code, e.g. `ERR syntax error`.
    /// CR/LF inside are replaced by spaces, as Redis's addReplyErrorLength does.
    pub fn error(&mut self, msg: &str) {
        self.error_bytes(msg.as_bytes());
    }
    /// An error text of raw bytes (it may quote a client's argument, which
    /// is not UTF-8 in general: Redis echoes its bytes unchanged).
    pub fn error_bytes(&mut self, msg: &[u8]) {
        self.error_parts(&[msg]);
    }
    /// An error whose text is `parts` joined, e.g. `[b"ERR Unknown client
    /// type '", arg, b"'"]`: no intermediate string, no lossy conversion.
    pub fn error_parts(&mut self, parts: &[&[u8]]) {
        let first: &[u8] = parts.iter().find(|p| !p.is_empty()).copied().unwrap_or(b"");
        self.error_prefix = Some(ErrorKind::from_error(first));
        self.buf.push(b'-');
        for &c in parts.iter().flat_map(|p| p.iter()) {
            self.buf.push(if c == b'\r' || c == b'\n' { b' ' } else { c });
        }
        self.buf.extend_from_slice(b"\r\n");
    }
    pub fn int(&mut self, n: i64) {
        self.len_line(b':', n);
    }
    pub fn bulk(&mut self, s: &[u8]) {
        if s.len() <= SHORT_BULK_MAX {
            return self.short_bulk(s);
        }
        if s.len() < 10 {
            // One-digit lengths (LRANGE's and the pops' short elements):
            // the header in one write, no integer formatting. Measured
            // (benches/types.rs bulk_600): see perf/RESULTS.md.
            self.buf.extend_from_slice(&[b'$', b'0' + s.len() as u8, b'\r', b'\n']);
        } else if s.len() < 100 {
            // Two digits (GET's small values): one fixed-size write from
            // the pairs table, not `len_line`'s right-aligned buffer.
            let d = s.len() * 2;
            self.buf.extend_from_slice(&[b'$', DIGIT_PAIRS[d], DIGIT_PAIRS[d + 1], b'\r', b'\n']);
        } else {
            self.len_line(b'$', s.len() as i64);
        }
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }
    /// `bulk` of at most `SHORT_BULK_MAX` bytes (the pops' and GET's short
    /// values): the whole reply, header, bytes and CRLF, built in a stack
    /// buffer and appended as one fixed-size 24-byte copy, the length then
    /// set to the reply's. The bytes go in as overlapping word copies (as
    /// `commands::same_short_name` compares names): three appends with a
    /// capacity test and a length update each, and a `memcpy` call for the
    /// value, were ~70 instructions of a 3-byte LPOP reply.
    #[inline]
    fn short_bulk(&mut self, s: &[u8]) {
        let n = s.len();
        let mut line = [0u8; 24];
        let h = if n < 10 {
            line[..4].copy_from_slice(&[b'$', b'0' + n as u8, b'\r', b'\n']);
            4
        } else {
            let d = n * 2;
            line[..5].copy_from_slice(&[b'$', DIGIT_PAIRS[d], DIGIT_PAIRS[d + 1], b'\r', b'\n']);
            5
        };
        // At most 5 + 16 + 2 = 23 bytes: every range below is inside `line`.
        let v = &mut line[h..h + n + 2];
        match n {
            0 => {}
            1..=3 => {
                v[0] = s[0];
                v[n / 2] = s[n / 2];
                v[n - 1] = s[n - 1];
            }
            4..=7 => {
                v[..4].copy_from_slice(&s[..4]);
                v[n - 4..n].copy_from_slice(&s[n - 4..]);
            }
            _ => {
                v[..8].copy_from_slice(&s[..8]);
                v[n - 8..n].copy_from_slice(&s[n - 8..]);
            }
        }
        v[n..].copy_from_slice(b"\r\n");
        let end = self.buf.len() + h + n + 2;
        self.buf.extend_from_slice(&line);
        self.buf.truncate(end);
    }
    /// A stored collection element as a bulk string: integers (listpack
    /// and intset encodings) as their decimal text, as Redis replies them.
    pub fn entry(&mut self, e: crate::types::listpack::Entry<'_>) {
        match e {
            crate::types::listpack::Entry::Str(s) => self.bulk(s),
            crate::types::listpack::Entry::Int(n) => self.bulk_int(n),
        }
    }
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }
    /// The null of the client's protocol: `$-1` (RESP2) or `_` (RESP3).
    pub fn null(&mut self) {
        if self.resp >= 3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }
    /// Null array: `*-1` (RESP2) or `_` (RESP3).
    pub fn null_array(&mut self) {
        if self.resp >= 3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }
    pub fn array(&mut self, n: usize) {
        self.len_line(b'*', n as i64);
    }
    /// `n` pairs as HRANDFIELD WITHVALUES sends them (and ZRANDMEMBER
    /// WITHSCORES): an array of `n` two-element arrays in RESP3, one flat
    /// array of 2n in RESP2. Each pair then starts with `pair()`.
    pub fn pairs(&mut self, n: usize) {
        if self.resp >= 3 {
            self.len_line(b'*', n as i64);
        } else {
            self.len_line(b'*', 2 * n as i64);
        }
    }
    /// The start of one pair of `pairs`: `*2` in RESP3, nothing in RESP2.
    pub fn pair(&mut self) {
        if self.resp >= 3 {
            self.buf.extend_from_slice(b"*2\r\n");
        }
    }
    /// A map of `n` pairs: `%n` in RESP3, an array of 2n in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp >= 3 {
            self.len_line(b'%', n as i64);
        } else {
            self.len_line(b'*', 2 * n as i64);
        }
    }
    pub fn set(&mut self, n: usize) {
        if self.resp >= 3 {
            self.len_line(b'~', n as i64);
        } else {
            self.len_line(b'*', n as i64);
        }
    }
    pub fn push(&mut self, n: usize) {
        if self.resp >= 3 {
            self.len_line(b'>', n as i64);
        } else {
            self.len_line(b'*', n as i64);
        }
    }
    pub fn boolean(&mut self, v: bool) {
        if self.resp >= 3 {
            self.buf.extend_from_slice(if v { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(v as i64);
        }
    }
    /// A double: `,` in RESP3, a bulk string in RESP2 (formatted as Redis's %.17g).
    pub fn double(&mut self, v: f64) {
        // Integral scores (the common case: ZPOPMIN, ZRANGE WITHSCORES)
        // are formatted on the stack, not into a `String` per reply.
        let mut ib = itoa::Buffer::new();
        let text;
        let s = match integral_double(v) {
            Some(i) => ib.format(i),
            None => {
                text = format_double(v);
                text.as_str()
            }
        };
        if self.resp >= 3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }
    /// A double already formatted (Redis's `addReplyHumanLongDouble`):
    /// `,` in RESP3, a bulk string in RESP2.
    pub fn double_text(&mut self, s: &[u8]) {
        if self.resp >= 3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(s);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }
    /// Verbatim text (`=` in RESP3 with the `txt:` format, bulk in RESP2).
    pub fn verbatim(&mut self, s: &[u8]) {
        if self.resp >= 3 {
            self.len_line(b'=', s.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(s);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Redis's `%.17g` formatting of doubles for replies (addReplyDouble), with
/// `inf`/`-inf`/`nan`.
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.is_nan() {
        return "nan".into();
    }
    if let Some(i) = integral_double(v) {
        return itoa::Buffer::new().format(i).to_string();
    }
    format_g17(v)
}

/// `v` as the integer `%.17g` prints it as, when it is one: integral
/// values below 2^53 print as integers (at most 16 digits), the common
/// case of scores, without the two formatting passes of `format_g`
/// (ZRANGE .. WITHSCORES replies one per element). Not -0 (printed "-0").
#[inline]
fn integral_double(v: f64) -> Option<i64> {
    (v.abs() < 9_007_199_254_740_992.0 && v == v.trunc() && !(v == 0.0 && v.is_sign_negative())).then_some(v as i64)
}

/// C's `%.17g`.
pub fn format_g17(v: f64) -> String {
    format_g(v, 17)
}

/// C's `%.<prec>g` (without the `#` flag): scientific when the exponent is
/// < -4 or >= prec, trailing zeros removed.
pub fn format_g(v: f64, prec: usize) -> String {
    if !v.is_finite() {
        // What glibc prints for the infinities and NaN.
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", mant, sign, exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, v)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn g17() {
        assert_eq!(format_g17(3.0), "3");
        assert_eq!(format_g17(10.5), "10.5");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(1.5e-7), "1.4999999999999999e-07");
        for v in [0.0, -0.0, 1.0, -7.0, 123456789.0, 9_007_199_254_740_991.0, -9_007_199_254_740_991.0, 9_007_199_254_740_992.0, 1e17] {
            assert_eq!(format_double(v), format_g17(v), "{}", v);
        }
    }
    #[test]
    fn integer_lines_at_every_width() {
        let mut cases = vec![0i64, 1, -1, 9, 10, -10, 99, 100, i64::MAX, i64::MIN, i64::MIN + 1];
        let mut p = 1i64;
        while let Some(q) = p.checked_mul(10) {
            cases.extend([p - 1, p, p + 1, -(p - 1), -p, -(p + 1)]);
            p = q;
        }
        for n in cases {
            let mut b = b"prefix".to_vec();
            Reply::new(&mut b, 2).int(n);
            assert_eq!(b, format!("prefix:{}\r\n", n).into_bytes(), "{}", n);
        }
    }
    #[test]
    fn bulk_headers_around_the_one_and_two_digit_fast_paths() {
        for n in (0usize..=120).chain([999, 1000, 12345]) {
            let mut b = Vec::new();
            let v = vec![b'x'; n];
            Reply::new(&mut b, 2).bulk(&v);
            let mut want = format!("${}\r\n", n).into_bytes();
            want.extend_from_slice(&v);
            want.extend_from_slice(b"\r\n");
            assert_eq!(b, want);
        }
        let mut b = Vec::new();
        let mut r = Reply::new(&mut b, 3);
        r.bulk_int(-12);
        r.double(-0.0);
        r.double(3.0);
        r.double(0.5);
        assert_eq!(b, b"$3\r\n-12\r\n,-0\r\n,3\r\n,0.5\r\n");
    }

    /// `short_bulk`'s overlapping copies put every byte in its place, at
    /// every length it takes and just past it, after bytes already queued.
    #[test]
    fn short_bulks_keep_every_byte() {
        for n in 0..=SHORT_BULK_MAX + 2 {
            let v: Vec<u8> = (0..n as u8).map(|i| b'a' + i).collect();
            let mut b = b"+OK\r\n".to_vec();
            Reply::new(&mut b, 2).bulk(&v);
            let mut want = format!("+OK\r\n${}\r\n", n).into_bytes();
            want.extend_from_slice(&v);
            want.extend_from_slice(b"\r\n");
            assert_eq!(b, want, "{n}");
        }
    }

    #[test]
    fn resp2_vs_resp3() {
        let mut b = Vec::new();
        let mut r = Reply::new(&mut b, 2);
        r.null();
        r.map(1);
        r.double(1.5);
        assert_eq!(b, b"$-1\r\n*2\r\n$3\r\n1.5\r\n");
        let mut b = Vec::new();
        let mut r = Reply::new(&mut b, 3);
        r.null();
        r.map(1);
        r.double(1.5);
        assert_eq!(b, b"_\r\n%1\r\n,1.5\r\n");
    }
}
