//! Incremental RESP request parser (multibulk and inline), as Redis's
//! `processMultibulkBuffer` / `processInlineBuffer`, with Redis's error texts.

/// Longest inline request, and longest `*N` / `$N` header line, that may sit
/// in the buffer without its newline (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX_BYTES: usize = 64 * 1024;
/// Largest multibulk count Redis 7.0 accepts (`*N` with N > INT_MAX is a
/// protocol error). Arguments are only parsed as their bytes arrive, so a
/// large count reserves nothing.
pub const MULTIBULK_COUNT_MAX: i64 = i32::MAX as i64;
/// Before authentication Redis 7.0 accepts at most 10 arguments of at most
/// 16 KiB each (CVE-2021-32675): a client that has not given the password
/// cannot make the server hold more than a few hundred KiB for it.
pub const UNAUTHENTICATED_COUNT_MAX: i64 = 10;
pub const UNAUTHENTICATED_BULK_BYTES_MAX: i64 = 16 * 1024;
/// Most argument entries reserved from a declared count (12 bytes each).
const ARGS_RESERVE_MAX: usize = 1 << 20;
/// A bulk at least this long is received into a buffer reserved at its
/// declared size (Redis's PROTO_MBULK_BIG_ARG), not grown by doubling.
pub const BIG_ARG_BYTES: i64 = 32 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct ParseLimits {
    /// `proto-max-bulk-len`.
    pub bulk_bytes_max: i64,
    /// The client must still authenticate (Redis's `authRequired`): counts
    /// and bulk lengths are held to the unauthenticated limits above.
    pub unauthenticated: bool,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits { bulk_bytes_max: 512 * 1024 * 1024, unauthenticated: false }
    }
}

/// A protocol error: the text after `-ERR Protocol error: `. Redis replies with
/// it and closes the connection once the reply is written. Bytes, not text:
/// "expected '$', got '%c'" quotes the client's byte as it came (0xAD goes
/// back as 0xAD, not as UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static [u8]);

/// How far the parser got into a request that has not fully arrived, so that
/// the next receive continues there instead of at the frame's first byte.
///
/// Restarting cost O(bytes so far) per receive, O(n^2) per frame: a 4 MB
/// MSET arriving in 1460-byte pieces took ~220 ms of CPU against
/// redis-server's ~40 ms, and 200 clients streaming 1 MB of one-byte
/// arguments each took 8.6 s of CPU and held PING up for 5.8 s. Redis keeps
/// the same state on its client (`multibulklen`, `bulklen`, `argv`).
///
/// Valid only together with the frame's bytes from its first byte on (the
/// connection's query buffer starts there) and the `Args` it filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameProgress {
    /// Bytes of the frame fully parsed: the `*N` line, each complete
    /// argument, and the `$N` line of the bulk still arriving.
    parsed_bytes: usize,
    /// Bytes after `parsed_bytes` known to hold no line end: a header line
    /// or an inline request whose newline has not arrived is not rescanned.
    scanned_bytes: usize,
    /// Arguments still to come; 0 while the `*N` line itself (or an inline
    /// request) is incomplete.
    args_left: u32,
    /// Declared length of the bulk whose `$N` line is parsed (`parsed_bytes`
    /// is where its bytes start); None while its header is still to come.
    bulk_bytes: Option<usize>,
}

impl FrameProgress {
    /// Some of a frame has been looked at.
    #[inline]
    pub fn in_progress(&self) -> bool {
        self.parsed_bytes != 0 || self.scanned_bytes != 0
    }

    /// When the frame waits for the bytes of a bulk of at least
    /// `BIG_ARG_BYTES`: where that bulk's bytes start in the frame (what
    /// precedes them, Redis holds as parsed arguments, not in its query
    /// buffer, which then starts with the big bulk).
    pub fn big_bulk_start(&self) -> Option<usize> {
        match self.bulk_bytes {
            Some(n) if n as i64 >= BIG_ARG_BYTES => Some(self.parsed_bytes),
            _ => None,
        }
    }

    /// When the frame waits for the bytes of a bulk of at least
    /// `BIG_ARG_BYTES`: the length the frame's bytes will have once that bulk
    /// and its CRLF are in, so the buffer can be reserved at that size once.
    pub fn big_bulk_frame_bytes(&self) -> Option<usize> {
        match self.bulk_bytes {
            Some(n) if n as i64 >= BIG_ARG_BYTES => Some(self.parsed_bytes + n + 2),
            _ => None,
        }
    }
}

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
    #[inline]
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.owned.clear();
        // One command of 150k one-byte arguments leaves 1.8 MB of ranges
        // behind; the next commands need a few entries.
        if self.ranges.capacity() > 4096 {
            self.shrink();
        }
    }
    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        self.ranges.shrink_to(64);
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
    #[inline(always)]
    pub fn slices<'a>(&'a self, buf: &'a [u8], out: &mut Vec<&'a [u8]>) {
        out.clear();
        if self.owned.is_empty() {
            // Every argument lies in `buf` (any multibulk request): no
            // per-argument owner test nor index check. One `extend` over
            // the ranges reserves once and writes each slice without a
            // capacity test (a `push` per argument tested it: ~8
            // instructions an argument).
            out.extend(self.ranges.iter().map(|&(start, end, _)| &buf[start as usize..end as usize]));
        } else {
            out.reserve(self.ranges.len());
            for i in 0..self.ranges.len() {
                out.push(self.get(buf, i));
            }
        }
    }
}

/// Parses one command from the front of `buf`.
/// `Ok(Some(n))`: a command (possibly empty: `args.is_empty()`) used `n` bytes.
/// `Ok(None)`: incomplete, read more. `Err`: protocol error.
pub fn parse_command(buf: &[u8], args: &mut Args, limits: &ParseLimits) -> Result<Option<usize>, ParseError> {
    parse_frame(buf, args, limits, &mut FrameProgress::default())
}

/// `parse_command` that continues where `progress` says an earlier call on
/// the same frame (a shorter prefix of `buf`, same `args`) stopped. On
/// `Ok(None)` `progress` and `args` record where to go on from; on anything
/// else `progress` is reset for the next frame.
///
/// Inlined up to the small-request path (`small_multibulk`): a pipelined
/// batch's requests are parsed in the caller's loop without a call, its
/// register saves and a result returned through memory each; everything
/// else is `parse_frame_general`, out of line.
#[inline(always)]
pub fn parse_frame(buf: &[u8], args: &mut Args, limits: &ParseLimits, progress: &mut FrameProgress) -> Result<Option<usize>, ParseError> {
    if !progress.in_progress() {
        args.clear();
        if let Some(n) = small_multibulk(buf, args, limits) {
            *progress = FrameProgress::default();
            return Ok(Some(n));
        }
    }
    parse_frame_general(buf, args, limits, progress)
}

/// `parse_frame` past its small-request path.
#[inline(never)]
fn parse_frame_general(buf: &[u8], args: &mut Args, limits: &ParseLimits, progress: &mut FrameProgress) -> Result<Option<usize>, ParseError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let parsed = if buf[0] == b'*' { parse_multibulk(buf, args, limits, progress) } else { parse_inline(buf, args, progress) };
    if !matches!(parsed, Ok(None)) {
        *progress = FrameProgress::default();
    }
    parsed
}

/// Redis's string2ll, shared with the keyspace's integer encoding.
fn parse_int(digits: &[u8]) -> Option<i64> {
    crate::shard::keyspace::canonical_int(digits)
}

/// The common header, `*N\r\n` or `$N\r\n` with N of one or two digits
/// (no leading zero), whole with its `\n`: where its `\r` is and N, read
/// without a search or `string2ll` (a memchr2 call and a canonical-integer
/// parse per header were ~20% of a pipelined RPUSH's user instructions).
/// None for anything else, which the general path reads as before: the
/// same line, the same value, the same errors.
#[inline]
fn short_header(line: &[u8]) -> Option<(usize, i64)> {
    let d1 = *line.get(1)?;
    if !d1.is_ascii_digit() {
        return None;
    }
    let b2 = *line.get(2)?;
    if b2 == b'\r' {
        return (line.len() > 3).then_some((2, (d1 - b'0') as i64));
    }
    if d1 != b'0' && b2.is_ascii_digit() && line.get(3) == Some(&b'\r') && line.len() > 4 {
        return Some((3, ((d1 - b'0') * 10 + (b2 - b'0')) as i64));
    }
    None
}

/// A whole small request at the front of `buf`, read in one pass: `*N`
/// and every `$N` header of one or two digits, every
/// argument there in full, the client authenticated (a GET or SET of a
/// short key and value: nearly every request of an unpipelined client).
/// Its arguments go into `args` (empty on entry) and its length is
/// returned. None for anything else (a longer header, an argument not all
/// there, a limit, an error to report), with `args` left empty: the
/// general parser then reads the request from its first byte as if this
/// had not looked, so a request gets the same arguments, length, errors and
/// progress either way; this only skips the general path's state machine
/// (a fifth of the user instructions of a parse at -P 1).
#[inline(always)]
fn small_multibulk(buf: &[u8], args: &mut Args, limits: &ParseLimits) -> Option<usize> {
    if buf.first() != Some(&b'*') || limits.unauthenticated {
        return None;
    }
    let (nl, count) = short_header(buf)?;
    if count == 0 {
        return None;
    }
    let mut pos = nl + 2;
    let ranges = &mut args.ranges;
    ranges.reserve(count as usize);
    for _ in 0..count {
        // Declined (the general path reads it) unless `$N\r\n` whole is
        // there with N of one or two digits (no leading zero; the byte after
        // `\r` a `\n`) within the bulk limit, and the bulk and its CRLF
        // after it. Any argument takes at least 6 bytes (`$0\r\n\r\n`), so
        // one length check covers the header's bytes: a few compares an
        // argument, where `short_header` took a slice and
        // a bounds check per byte (~40 instructions an argument).
        let Some(h) = buf.get(pos..pos + 6) else {
            ranges.clear();
            return None;
        };
        let d1 = h[1].wrapping_sub(b'0');
        let d2 = h[2].wrapping_sub(b'0');
        let (header, len) = if h[0] != b'$' || d1 > 9 {
            (0, 0)
        } else if h[2] == b'\r' && h[3] == b'\n' {
            (4, d1 as usize)
        } else if d1 != 0 && d2 <= 9 && h[3] == b'\r' && h[4] == b'\n' {
            (5, (d1 * 10 + d2) as usize)
        } else {
            (0, 0)
        };
        let end = pos + header + len;
        if header == 0 || len as i64 > limits.bulk_bytes_max || end + 2 > buf.len() {
            ranges.clear();
            return None;
        }
        ranges.push(((pos + header) as u32, end as u32, false));
        pos = end + 2;
    }
    Some(pos)
}

/// Where the line starting at `line[0]` ends (its `terminator`), searching
/// from `from`; or how far a later search may start (`Err`). Redis looks with
/// `strchr` on the NUL-terminated query buffer, so a NUL byte before the
/// terminator hides it for good: the line counts as not yet complete (and as
/// too big past 64 KiB). Same here, so a client sees the same reply (or
/// none) from both servers.
#[inline]
fn line_end(line: &[u8], from: usize, terminator: u8) -> Result<usize, usize> {
    match memchr::memchr2(terminator, 0, &line[from..]) {
        Some(i) if line[from + i] == terminator => Ok(from + i),
        Some(i) => Err(from + i),
        None => Err(line.len()),
    }
}

/// The end of the frame's first line (`line_end` from where `progress`
/// left off); None, with `progress` noting how far it looked, when it has
/// not arrived; `too_big` when it is past INLINE_MAX_BYTES without one.
fn first_line(buf: &[u8], progress: &mut FrameProgress, terminator: u8, too_big: &'static [u8]) -> Result<Option<usize>, ParseError> {
    match line_end(buf, progress.scanned_bytes, terminator) {
        Ok(nl) => Ok(Some(nl)),
        Err(_) if buf.len() > INLINE_MAX_BYTES => Err(ParseError(too_big)),
        Err(scanned) => {
            progress.scanned_bytes = scanned;
            Ok(None)
        }
    }
}

fn parse_multibulk(buf: &[u8], args: &mut Args, limits: &ParseLimits, progress: &mut FrameProgress) -> Result<Option<usize>, ParseError> {
    let (mut pos, mut args_left, mut bulk, mut scanned);
    if progress.args_left == 0 {
        let short = if progress.scanned_bytes == 0 { short_header(buf) } else { None };
        let (nl, parsed) = match short {
            Some((nl, n)) => (nl, Some(n)),
            None => {
                let Some(nl) = first_line(buf, progress, b'\r', b"too big mbulk count string")? else {
                    return Ok(None);
                };
                if nl + 1 >= buf.len() {
                    progress.scanned_bytes = nl;
                    return Ok(None);
                }
                (nl, parse_int(&buf[1..nl]))
            }
        };
        let count = match parsed {
            Some(n) if n <= MULTIBULK_COUNT_MAX => n,
            _ => return Err(ParseError(b"invalid multibulk length")),
        };
        if count > UNAUTHENTICATED_COUNT_MAX && limits.unauthenticated {
            return Err(ParseError(b"unauthenticated multibulk length"));
        }
        pos = nl + 2;
        if count <= 0 {
            return Ok(Some(pos));
        }
        // The argument table sized once from the declared count: grown by
        // doubling instead, 200 clients streaming 150k one-byte arguments
        // each spent ~65% of the shard's CPU zeroing the fresh huge pages
        // (jemalloc `thp:always`) of each copy (2.2 s of CPU and a 1.9 s
        // PING stall, against 0.63 s and 0.25 s reserved). Capped, since the
        // count is only a claim; unauthenticated clients declare at most 10.
        args.ranges.reserve((count as usize).min(ARGS_RESERVE_MAX));
        (args_left, bulk, scanned) = (count as u32, None, 0);
    } else {
        (pos, args_left, bulk, scanned) = (progress.parsed_bytes, progress.args_left, progress.bulk_bytes, progress.scanned_bytes);
    }
    while args_left > 0 {
        let len = match bulk {
            Some(len) => len,
            None => {
                let rest = &buf[pos..];
                let short = if scanned == 0 && rest.first() == Some(&b'$') { short_header(rest) } else { None };
                let (nl, parsed) = match short {
                    Some((nl, n)) => (nl, Some(n)),
                    None => {
                        let nl = match line_end(rest, scanned, b'\r') {
                            Ok(nl) => nl,
                            Err(scanned) => {
                                if rest.len() > INLINE_MAX_BYTES {
                                    return Err(ParseError(b"too big bulk count string"));
                                }
                                *progress = FrameProgress { parsed_bytes: pos, scanned_bytes: scanned, args_left, bulk_bytes: None };
                                return Ok(None);
                            }
                        };
                        // As Redis: the whole line, `\n` included, before its first byte is judged.
                        if nl + 1 >= rest.len() {
                            *progress = FrameProgress { parsed_bytes: pos, scanned_bytes: nl, args_left, bulk_bytes: None };
                            return Ok(None);
                        }
                        if rest[0] != b'$' {
                            return Err(ParseError(expected_dollar(rest[0])));
                        }
                        (nl, parse_int(&rest[1..nl]))
                    }
                };
                let len = match parsed {
                    Some(n) if n >= 0 && n <= limits.bulk_bytes_max => n,
                    _ => return Err(ParseError(b"invalid bulk length")),
                };
                if len > UNAUTHENTICATED_BULK_BYTES_MAX && limits.unauthenticated {
                    return Err(ParseError(b"unauthenticated bulk length"));
                }
                pos += nl + 2;
                scanned = 0;
                len as usize
            }
        };
        let end = pos + len;
        if end + 2 > buf.len() {
            *progress = FrameProgress { parsed_bytes: pos, scanned_bytes: 0, args_left, bulk_bytes: Some(len) };
            return Ok(None);
        }
        args.ranges.push((pos as u32, end as u32, false));
        pos = end + 2;
        bulk = None;
        args_left -= 1;
    }
    Ok(Some(pos))
}

/// Redis formats "expected '$', got '%c'" with the byte it saw; we keep a
/// static table so the error needs no allocation.
fn expected_dollar(c: u8) -> &'static [u8] {
    const PREFIX: &[u8] = b"expected '$', got '";
    static TABLE: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0u8..=255)
            .map(|b| {
                let mut s = PREFIX.to_vec();
                s.push(b);
                s.push(b'\'');
                s
            })
            .collect()
    });
    table[c as usize].as_slice()
}

fn parse_inline(buf: &[u8], args: &mut Args, progress: &mut FrameProgress) -> Result<Option<usize>, ParseError> {
    let Some(nl) = first_line(buf, progress, b'\n', b"too big inline request")? else {
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    if !split_args(line, args) {
        return Err(ParseError(b"unbalanced quotes in request"));
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

/// C's `isspace`, which `sdssplitargs` uses: Rust's `is_ascii_whitespace`
/// leaves out the vertical tab (0x0B), so "GET\x0Bk" would split differently.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Redis's `sdssplitargs`: whitespace separated, "double quotes" with
/// escapes (\n \r \t \b \a \\ \" \xHH), 'single quotes' with \' only.
/// A closing quote must be followed by a space or the end.
pub fn split_args(line: &[u8], args: &mut Args) -> bool {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_c_space(line[i]) {
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
                    if i + 1 < n && !is_c_space(line[i + 1]) {
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
                    if i + 1 < n && !is_c_space(line[i + 1]) {
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

    /// The short-header path reads exactly what the general one does.
    #[test]
    fn short_headers_agree_with_the_general_path() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for body in ["0", "1", "9", "10", "42", "99", "100", "05", "00", "-1", "", "1x", "x", "+1", " 1"] {
            for lead in [b'*', b'$'] {
                for tail in ["\r\n", "\r", "\rX", "\n", "", "\0\r\n"] {
                    let mut l = vec![lead];
                    l.extend_from_slice(body.as_bytes());
                    l.extend_from_slice(tail.as_bytes());
                    lines.push(l);
                }
            }
        }
        let mut short = 0;
        for l in &lines {
            if let Some((nl, n)) = short_header(l) {
                short += 1;
                assert_eq!(line_end(l, 0, b'\r'), Ok(nl), "{:?}", l);
                assert!(nl + 1 < l.len(), "{:?}", l);
                assert_eq!(parse_int(&l[1..nl]), Some(n), "{:?}", l);
            }
        }
        assert_eq!(short, 2 * 2 * 6, "1-2 digit canonical bodies with their \\r and one more byte");
        // Whole frames, at once and a byte at a time, with every header width.
        let mut input = Vec::new();
        let mut want = Vec::new();
        for n in [0usize, 1, 9, 10, 99, 100, 1000] {
            let arg = vec![b'a'; n];
            input.extend_from_slice(format!("*2\r\n$3\r\nSET\r\n${}\r\n", n).as_bytes());
            input.extend_from_slice(&arg);
            input.extend_from_slice(b"\r\n");
            want.push(vec![b"SET".to_vec(), arg]);
        }
        assert_eq!(parse_all(&input).unwrap(), want);
        let (mut args, mut progress, mut got, mut start) = (Args::new(), FrameProgress::default(), Vec::new(), 0);
        for end in 1..=input.len() {
            if let Some(n) = parse_frame(&input[start..end], &mut args, &ParseLimits::default(), &mut progress).unwrap() {
                got.push((0..args.len()).map(|i| args.get(&input[start..end], i).to_vec()).collect::<Vec<_>>());
                start += n;
            }
        }
        assert_eq!(got, want);
        assert_eq!(parse_all(b"*1\r\n$05\r\nhello\r\n"), Err(ParseError(b"invalid bulk length")));
        assert_eq!(parse_all(b"*1\r\n#3\r\nfoo\r\n"), Err(ParseError(b"expected '$', got '#'")));
    }

    /// `small_multibulk` (tried first by `parse_frame`) answers exactly as
    /// the general path does, or not at all: same arguments, same length,
    /// and where it declines the general path's answer (errors, incomplete
    /// frames and their progress) is what `parse_frame` gives.
    #[test]
    fn small_requests_parse_as_the_general_path_does() {
        let mut frames: Vec<Vec<u8>> = vec![
            b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000012345\r\n".to_vec(),
            b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000012345\r\n$32\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n".to_vec(),
            b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
            b"*0\r\n".to_vec(),
            b"*2\r\n$0\r\n\r\n$99\r\n".to_vec(),
            b"*2\r\n$3\r\nGET\r\n$100\r\n".to_vec(),
            b"*1\r\n$05\r\nhello\r\n".to_vec(),
            b"*1\r\n#3\r\nfoo\r\n".to_vec(),
            b"*12\r\n".to_vec(),
            b"*2\r\n$3\r\nGETxx$1\r\nk\r\n".to_vec(),
            b"*1\r\n$3\nGET\r\n".to_vec(),
            b"*01\r\n$3\r\nGET\r\n".to_vec(),
            // A header whose `\r` is not followed by `\n`: the fast path
            // declines, the general one reads it as Redis does.
            b"*2\r\n$3\rxGET\r\n$1\r\nk\r\n".to_vec(),
            b"*2\r\n$3\r\nGET\r\n$12\rxkey:00000001\r\n".to_vec(),
            b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n".to_vec(),
        ];
        let mut long = b"*99\r\n".to_vec();
        for _ in 0..99 {
            long.extend_from_slice(b"$2\r\nab\r\n");
        }
        frames.push(long);
        frames.push(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".to_vec());
        let mut fast_answers = 0;
        for frame in &frames {
            for unauthenticated in [false, true] {
                for bulk_bytes_max in [512 * 1024 * 1024, 3] {
                    let limits = ParseLimits { bulk_bytes_max, unauthenticated };
                    for cut in 0..=frame.len() {
                        let buf = &frame[..cut];
                        let (mut a, mut pa) = (Args::new(), FrameProgress::default());
                        let got = parse_frame(buf, &mut a, &limits, &mut pa);
                        let (mut b, mut pb) = (Args::new(), FrameProgress::default());
                        let general = if buf.is_empty() {
                            Ok(None)
                        } else if buf[0] == b'*' {
                            parse_multibulk(buf, &mut b, &limits, &mut pb)
                        } else {
                            parse_inline(buf, &mut b, &mut pb)
                        };
                        if !matches!(general, Ok(None)) {
                            pb = FrameProgress::default();
                        }
                        assert_eq!(got, general, "{:?} {:?}", String::from_utf8_lossy(buf), limits);
                        assert_eq!(pa, pb, "{:?}", String::from_utf8_lossy(buf));
                        assert_eq!(a.ranges, b.ranges, "{:?}", String::from_utf8_lossy(buf));
                        let mut c = Args::new();
                        if small_multibulk(buf, &mut c, &limits).is_some() {
                            fast_answers += 1;
                        } else {
                            assert!(c.ranges.is_empty(), "declined with arguments left");
                        }
                    }
                }
            }
        }
        assert!(fast_answers > 40, "the fast path answered {fast_answers} times");
    }

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
        assert_eq!(parse_all(b"SET \"abc\r\n"), Err(ParseError(b"unbalanced quotes in request")));
        assert_eq!(parse_all(b"SET \"abc\"x\r\n"), Err(ParseError(b"unbalanced quotes in request")));
        assert_eq!(parse_all(b"\r\n").unwrap(), vec![Vec::<Vec<u8>>::new()]);
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(parse_all(b"*x\r\n"), Err(ParseError(b"invalid multibulk length")));
        assert_eq!(parse_all(b"*2147483648\r\n"), Err(ParseError(b"invalid multibulk length")));
        assert_eq!(parse_all(b"*-9223372036854775808\r\n").unwrap().len(), 1);
        assert_eq!(parse_all(b"*1\r\n:3\r\n"), Err(ParseError(b"expected '$', got ':'")));
        assert_eq!(parse_all(b"*1\r\n$-1\r\n"), Err(ParseError(b"invalid bulk length")));
        let limits = ParseLimits { bulk_bytes_max: 10, ..ParseLimits::default() };
        let mut args = Args::new();
        assert_eq!(parse_command(b"*1\r\n$11\r\n", &mut args, &limits), Err(ParseError(b"invalid bulk length")));
        let big = vec![b'a'; INLINE_MAX_BYTES + 1];
        assert_eq!(parse_all(&big), Err(ParseError(b"too big inline request")));
        // Redis judges a bulk header only once its whole line is in.
        let mut args = Args::new();
        assert_eq!(parse_command(b"*1\r\nx\r", &mut args, &ParseLimits::default()), Ok(None));
        assert_eq!(parse_command(b"*1\r\nx\r\n", &mut args, &ParseLimits::default()), Err(ParseError(b"expected '$', got 'x'")));
    }

    /// "got '%c'" quotes the byte itself, whatever it is (protofuzz.py sent
    /// 0xAD: ringkv answered it UTF-8 encoded, as 0xC2 0xAD).
    #[test]
    fn expected_dollar_quotes_the_raw_byte() {
        assert_eq!(parse_all(b"*1\r\n\xad\r\n"), Err(ParseError(b"expected '$', got '\xad'")));
        assert_eq!(parse_all(b"*1\r\n\xffx\r\n"), Err(ParseError(b"expected '$', got '\xff'")));
    }

    /// Redis finds line ends with `strchr`, which stops at a NUL byte: such a
    /// line waits for more input, and is too big past 64 KiB.
    #[test]
    fn nul_before_the_line_end_hides_it() {
        for frame in [&b"*1\0\r\n"[..], b"*1\r\n$1\0\r\na\r\n", b"*1\r\n\0\r\n", b"PI\0NG\r\n"] {
            assert_eq!(parse_all(frame), Ok(vec![]), "{:?}", frame);
        }
        let mut big = b"PING\0".to_vec();
        big.resize(INLINE_MAX_BYTES + 1, b'\n');
        assert_eq!(parse_all(&big), Err(ParseError(b"too big inline request")));
        let mut big = b"*1\r\n$1\0".to_vec();
        big.resize(INLINE_MAX_BYTES + 5, b'\r');
        assert_eq!(parse_all(&big), Err(ParseError(b"too big bulk count string")));
    }

    #[test]
    fn inline_vertical_tab_is_a_space_as_in_c() {
        assert_eq!(parse_all(b"\x0bGET\x0bk\r\n").unwrap(), vec![vec![b"GET\x0bk".to_vec()]]);
        assert_eq!(parse_all(b"GET \"k\"\x0b\r\n").unwrap(), vec![vec![b"GET".to_vec(), b"k".to_vec()]]);
    }

    #[test]
    fn unauthenticated_limits() {
        let unauth = ParseLimits { unauthenticated: true, ..ParseLimits::default() };
        let mut args = Args::new();
        let mut ten = b"*10\r\n".to_vec();
        for _ in 0..10 {
            ten.extend_from_slice(b"$1\r\na\r\n");
        }
        assert_eq!(parse_command(&ten, &mut args, &unauth), Ok(Some(ten.len())));
        assert_eq!(parse_command(b"*11\r\n", &mut args, &unauth), Err(ParseError(b"unauthenticated multibulk length")));
        assert_eq!(parse_command(b"*11\r\n", &mut args, &ParseLimits::default()), Ok(None));
        assert_eq!(parse_command(b"*-100\r\n", &mut args, &unauth), Ok(Some(7)));
        assert_eq!(parse_command(b"*2147483648\r\n", &mut args, &unauth), Err(ParseError(b"invalid multibulk length")));
        assert_eq!(parse_command(b"*1\r\n$16384\r\n", &mut args, &unauth), Ok(None));
        assert_eq!(parse_command(b"*1\r\n$16385\r\n", &mut args, &unauth), Err(ParseError(b"unauthenticated bulk length")));
        // An invalid length is reported as such first, as Redis does.
        assert_eq!(parse_command(b"*1\r\n$-1\r\n", &mut args, &unauth), Err(ParseError(b"invalid bulk length")));
        let small = ParseLimits { bulk_bytes_max: 100, unauthenticated: true };
        assert_eq!(parse_command(b"*1\r\n$20000\r\n", &mut args, &small), Err(ParseError(b"invalid bulk length")));
        // Inline requests have only their 64 KiB line limit.
        let inline = format!("ECHO {}\r\n", "x".repeat(20000));
        assert_eq!(parse_command(inline.as_bytes(), &mut args, &unauth), Ok(Some(inline.len())));
    }

    /// Feeds `input` in pieces ending at `cuts`, as receives would, keeping
    /// the progress between them; returns the commands and the error.
    fn parse_in_pieces(input: &[u8], cuts: &[usize], limits: &ParseLimits) -> (Vec<Vec<Vec<u8>>>, Option<ParseError>) {
        let mut out = vec![];
        let mut args = Args::new();
        let mut progress = FrameProgress::default();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            let end = end.clamp(start, input.len());
            loop {
                match parse_frame(&input[start..end], &mut args, limits, &mut progress) {
                    Ok(Some(n)) => {
                        out.push((0..args.len()).map(|i| args.get(&input[start..], i).to_vec()).collect());
                        start += n;
                    }
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn every_split_point_gives_the_same_commands() {
        let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n*0\r\n*-1\r\n\r\n".to_vec();
        input.extend_from_slice(b"*2\r\n$4\r\nECHO\r\n$40000\r\n");
        input.extend(std::iter::repeat_n(b'v', 40000));
        input.extend_from_slice(b"\r\nECHO \"a b\"\n*1\r\n$4\r\nPING\r\n");
        let whole = parse_in_pieces(&input, &[], &ParseLimits::default());
        assert_eq!(whole.1, None);
        assert_eq!(whole.0.len(), 8);
        for cut in 0..input.len() {
            assert_eq!(parse_in_pieces(&input, &[cut], &ParseLimits::default()), whole, "cut at {}", cut);
        }
        // One byte per receive.
        let cuts: Vec<usize> = (1..input.len()).collect();
        assert_eq!(parse_in_pieces(&input, &cuts, &ParseLimits::default()), whole);
    }

    /// Resuming never rescans what was parsed: feeding a frame of `n`
    /// one-byte arguments one byte at a time costs O(n), checked through the
    /// progress recorded after each piece.
    #[test]
    fn progress_moves_forward_only() {
        let mut input = b"*1001\r\n$4\r\nECHO\r\n".to_vec();
        for _ in 0..1000 {
            input.extend_from_slice(b"$1\r\na\r\n");
        }
        let mut args = Args::new();
        let mut progress = FrameProgress::default();
        let mut last = (0, 0);
        for end in 1..input.len() {
            assert_eq!(parse_frame(&input[..end], &mut args, &ParseLimits::default(), &mut progress), Ok(None));
            let now = (progress.parsed_bytes, progress.scanned_bytes);
            assert!(now.0 > last.0 || (now.0 == last.0 && now.1 >= last.1), "went back from {:?} to {:?} at {}", last, now, end);
            assert!(now.0 + now.1 <= end);
            last = now;
        }
        assert_eq!(parse_frame(&input, &mut args, &ParseLimits::default(), &mut progress), Ok(Some(input.len())));
        assert_eq!(args.len(), 1001);
        assert!(!progress.in_progress());
    }

    #[test]
    fn big_bulk_reports_its_frame_size() {
        let mut args = Args::new();
        let mut progress = FrameProgress::default();
        let head = b"*2\r\n$4\r\nECHO\r\n$100000\r\nab";
        assert_eq!(parse_frame(head, &mut args, &ParseLimits::default(), &mut progress), Ok(None));
        assert_eq!(progress.big_bulk_frame_bytes(), Some(head.len() - 2 + 100_000 + 2));
        let mut progress = FrameProgress::default();
        assert_eq!(parse_frame(b"*2\r\n$4\r\nECHO\r\n$100\r\nab", &mut args, &ParseLimits::default(), &mut progress), Ok(None));
        assert_eq!(progress.big_bulk_frame_bytes(), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Valid commands, a few bytes of them changed, and raw noise: the
        /// inputs a fuzzer finds the parser's edges with.
        fn input() -> impl Strategy<Value = Vec<u8>> {
            let arg = prop::collection::vec(any::<u8>(), 0..40);
            let command = prop::collection::vec(arg, 0..6).prop_map(|args| {
                let mut v = format!("*{}\r\n", args.len()).into_bytes();
                for a in args {
                    v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    v.extend_from_slice(&a);
                    v.extend_from_slice(b"\r\n");
                }
                v
            });
            let inline = "[ -~\t\x0b\x0c]{0,30}\r?\n".prop_map(|s| s.into_bytes());
            let piece = prop_oneof![4 => command, 2 => inline, 1 => prop::collection::vec(any::<u8>(), 0..30)];
            (prop::collection::vec(piece, 1..6), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)).prop_map(|(pieces, flips)| {
                let mut v: Vec<u8> = pieces.concat();
                if !v.is_empty() {
                    for (at, b) in flips {
                        let i = at.index(v.len());
                        v[i] = b;
                    }
                }
                v
            })
        }

        proptest! {
            // 2000 cases take ~0.3 s in a debug build; PROPTEST_CASES runs more (perf/README.md).
            #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000), ..ProptestConfig::default() })]

            /// However the input is cut into receives, the commands and the
            /// error are those of parsing it whole; no panic; arguments never
            /// take more entries than the input has bytes for.
            #[test]
            fn pieces_parse_as_the_whole(input in input(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8), unauthenticated in any::<bool>()) {
                let limits = ParseLimits { bulk_bytes_max: 1000, unauthenticated };
                let whole = parse_in_pieces(&input, &[], &limits);
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
                cuts.sort_unstable();
                prop_assert_eq!(parse_in_pieces(&input, &cuts, &limits), whole.clone());
                let args: usize = whole.0.iter().map(|c| c.len()).sum();
                prop_assert!(args * 2 <= input.len() + 1);
            }
        }
    }
}
