//! Incremental RESP request parser (multibulk and inline), as Redis's
//! `processMultibulkBuffer` / `processInlineBuffer`, with Redis's error texts.

use memchr::memchr;

/// Longest inline request, and longest `*N` / `$N` header line, that may sit
/// in the buffer without its newline (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX_BYTES: usize = 64 * 1024;
/// Largest multibulk count Redis 7.0 accepts (`*N` with N > INT_MAX is a
/// protocol error). Arguments are only parsed as their bytes arrive, so a
/// large count reserves nothing.
pub const MULTIBULK_COUNT_MAX: i64 = i32::MAX as i64;

#[derive(Clone, Copy, Debug)]
pub struct ParseLimits {
    /// `proto-max-bulk-len`.
    pub bulk_bytes_max: i64,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits { bulk_bytes_max: 512 * 1024 * 1024 }
    }
}

/// A protocol error: the text after `-ERR Protocol error: `. Redis replies with
/// it and closes the connection once the reply is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

/// Argument ranges of one parsed command, reused from request to request.
/// Inline arguments that needed unescaping are stored in `owned`.
#[derive(Default, Debug)]
pub struct Args {
    ranges: Vec<(u32, u32, bool)>,
    owned: Vec<u8>,
}

impl Args {
    pub fn new() -> Self {
        Args::default()
    }
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.owned.clear();
    }
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
    /// Argument `i` of the command parsed from `buf`.
    #[inline]
    pub fn get<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        let (start, end, owned) = self.ranges[i];
        if owned {
            &self.owned[start as usize..end as usize]
        } else {
            &buf[start as usize..end as usize]
        }
    }
    /// Collects the arguments as slices (reusing `out`).
    pub fn slices<'a>(&'a self, buf: &'a [u8], out: &mut Vec<&'a [u8]>) {
        out.clear();
        for i in 0..self.ranges.len() {
            out.push(self.get(buf, i));
        }
    }
}

/// Parses one command from the front of `buf`.
/// `Ok(Some(n))`: a command (possibly empty: `args.is_empty()`) used `n` bytes.
/// `Ok(None)`: incomplete, read more. `Err`: protocol error.
pub fn parse_command(buf: &[u8], args: &mut Args, limits: &ParseLimits) -> Result<Option<usize>, ParseError> {
    args.clear();
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, args, limits)
    } else {
        parse_inline(buf, args)
    }
}

/// Redis's string2ll, shared with the keyspace's integer encoding.
fn parse_int(digits: &[u8]) -> Option<i64> {
    crate::shard::keyspace::canonical_int(digits)
}

fn parse_multibulk(buf: &[u8], args: &mut Args, limits: &ParseLimits) -> Result<Option<usize>, ParseError> {
    let nl = match memchr(b'\r', buf) {
        Some(p) => p,
        None => {
            if buf.len() > INLINE_MAX_BYTES {
                return Err(ParseError("too big mbulk count string"));
            }
            return Ok(None);
        }
    };
    if nl + 1 >= buf.len() {
        return Ok(None);
    }
    let count = match parse_int(&buf[1..nl]) {
        Some(n) if n <= MULTIBULK_COUNT_MAX => n,
        _ => return Err(ParseError("invalid multibulk length")),
    };
    let mut pos = nl + 2;
    if count <= 0 {
        return Ok(Some(pos));
    }
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(None);
        }
        let rest = &buf[pos..];
        let nl = match memchr(b'\r', rest) {
            Some(p) => p,
            None => {
                if rest.len() > INLINE_MAX_BYTES {
                    return Err(ParseError("too big bulk count string"));
                }
                return Ok(None);
            }
        };
        if rest[0] != b'$' {
            return Err(ParseError(expected_dollar(rest[0])));
        }
        if nl + 1 >= rest.len() {
            return Ok(None);
        }
        let len = match parse_int(&rest[1..nl]) {
            Some(n) if n >= 0 && n <= limits.bulk_bytes_max => n as usize,
            _ => return Err(ParseError("invalid bulk length")),
        };
        let start = pos + nl + 2;
        let end = start + len;
        if end + 2 > buf.len() {
            return Ok(None);
        }
        args.ranges.push((start as u32, end as u32, false));
        pos = end + 2;
    }
    Ok(Some(pos))
}

/// Redis formats "expected '$', got '%c'" with the byte it saw; we keep a
/// static table so the error needs no allocation.
fn expected_dollar(c: u8) -> &'static str {
    const PREFIX: &str = "expected '$', got '";
    static TABLE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0u8..=255)
            .map(|b| {
                let mut s = String::from(PREFIX);
                s.push(b as char);
                s.push('\'');
                s
            })
            .collect()
    });
    table[c as usize].as_str()
}

fn parse_inline(buf: &[u8], args: &mut Args) -> Result<Option<usize>, ParseError> {
    let nl = match memchr(b'\n', buf) {
        Some(p) => p,
        None => {
            if buf.len() > INLINE_MAX_BYTES {
                return Err(ParseError("too big inline request"));
            }
            return Ok(None);
        }
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    if !split_args(line, args) {
        return Err(ParseError("unbalanced quotes in request"));
    }
    Ok(Some(nl + 1))
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Redis's `sdssplitargs`: whitespace separated, "double quotes" with
/// escapes (\n \r \t \b \a \\ \" \xHH), 'single quotes' with \' only.
/// A closing quote must be followed by a space or the end.
pub fn split_args(line: &[u8], args: &mut Args) -> bool {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let start_owned = args.owned.len();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' && line[i + 2].is_ascii_hexdigit() && line[i + 3].is_ascii_hexdigit() {
                    args.owned.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    args.owned.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    args.owned.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    args.owned.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    args.owned.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => args.owned.push(c),
                }
            }
            i += 1;
        }
        // Undo the extra increment of the loop when we broke out by `break`
        // after already advancing; both paths above leave `i` past the token.
        let end_owned = args.owned.len();
        args.ranges.push((start_owned as u32, end_owned as u32, true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
        let mut out = vec![];
        let mut args = Args::new();
        let mut pos = 0;
        while let Some(n) = parse_command(&input[pos..], &mut args, &ParseLimits::default())? {
            let v: Vec<Vec<u8>> = (0..args.len()).map(|i| args.get(&input[pos..], i).to_vec()).collect();
            out.push(v);
            pos += n;
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_partial() {
        let cmd = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        assert_eq!(parse_all(cmd).unwrap(), vec![vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]]);
        let mut args = Args::new();
        for cut in 0..cmd.len() {
            assert_eq!(parse_command(&cmd[..cut], &mut args, &ParseLimits::default()), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn inline_quotes() {
        let got = parse_all(b"SET \"a b\" 'c\\'d' \"\\x41\\n\"\r\nPING\n").unwrap();
        assert_eq!(got[0], vec![b"SET".to_vec(), b"a b".to_vec(), b"c'd".to_vec(), b"A\n".to_vec()]);
        assert_eq!(got[1], vec![b"PING".to_vec()]);
        assert_eq!(parse_all(b"SET \"abc\r\n"), Err(ParseError("unbalanced quotes in request")));
        assert_eq!(parse_all(b"SET \"abc\"x\r\n"), Err(ParseError("unbalanced quotes in request")));
        assert_eq!(parse_all(b"\r\n").unwrap(), vec![Vec::<Vec<u8>>::new()]);
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(parse_all(b"*x\r\n"), Err(ParseError("invalid multibulk length")));
        assert_eq!(parse_all(b"*2147483648\r\n"), Err(ParseError("invalid multibulk length")));
        assert_eq!(parse_all(b"*-9223372036854775808\r\n").unwrap().len(), 1);
        assert_eq!(parse_all(b"*1\r\n:3\r\n"), Err(ParseError("expected '$', got ':'")));
        assert_eq!(parse_all(b"*1\r\n$-1\r\n"), Err(ParseError("invalid bulk length")));
        let limits = ParseLimits { bulk_bytes_max: 10 };
        let mut args = Args::new();
        assert_eq!(parse_command(b"*1\r\n$11\r\n", &mut args, &limits), Err(ParseError("invalid bulk length")));
        let big = vec![b'a'; INLINE_MAX_BYTES + 1];
        assert_eq!(parse_all(&big), Err(ParseError("too big inline request")));
    }
}
