//! Key prefetching across the requests of one loop turn (issue 14).
//!
//! At `-P 1` every connection sends one request per round trip, so a loop
//! turn reaps one receive each from several connections (about six at
//! `-c 50` on a 2-core VM) and runs their commands one after the other; each
//! lookup then stalls on the cache misses of its index bucket, entry and key
//! (a GET or SET over 1M keys spent 40-45% of the shard's user time in
//! `Dict::find_hashed`, waiting on memory). Before the turn's receives are
//! processed, `prefetch_received` reads the key of each one's first request
//! straight from its receive buffer and asks for that memory in three passes
//! (as `parse_and_run` does for a pipelined batch, `prefetch_keys`), so the
//! misses of the turn's lookups overlap. It is a hint only: a request whose
//! second argument is not a key, or that the guess misreads, costs a wasted
//! prefetch, never a wrong result.

use io_uring::cqueue;

use super::event_loop::{ud_parts, EventLoop, KIND_RECV};
use crate::protocol::parser::Args;
use crate::shard::keyspace::{Db, Value};
use crate::types::hash::Hash;
use crate::types::set::Set;

/// Lookups prefetched together (the batch `prefetch_entries` takes).
pub const PREFETCH_BATCH: usize = 16;

/// The decimal at the front of `data` and what follows its CRLF.
#[inline]
fn number_line(data: &[u8]) -> Option<(usize, &[u8])> {
    let mut n = 0usize;
    for (i, &b) in data.iter().enumerate().take(12) {
        match b {
            b'0'..=b'9' => n = n * 10 + (b - b'0') as usize,
            b'\r' if i > 0 => return Some((n, data.get(i + 2..)?)),
            _ => return None,
        }
    }
    None
}

/// The `*N` or `$N` header (`sigil`) at the front of `data`: N and what
/// follows its CRLF. One or two digits, the common case (as the parser's
/// `short_header`), are read by a few compares; `number_line`'s loop over
/// the digits took ~15 instructions a header, and `request_key`, three
/// headers a receive, was ~75 instructions of every request at -P 1
/// (perf/RESULTS.md "user22"). Anything else goes to `number_line`, with
/// the same result.
#[inline(always)]
fn header(data: &[u8], sigil: u8) -> Option<(usize, &[u8])> {
    if let Some(&[s, b1, b2, b3]) = data.get(..4) {
        let d1 = b1.wrapping_sub(b'0');
        if s == sigil && d1 <= 9 {
            if b2 == b'\r' {
                return Some((d1 as usize, &data[4..]));
            }
            let d2 = b2.wrapping_sub(b'0');
            if d2 <= 9 && b3 == b'\r' {
                return Some(((d1 * 10 + d2) as usize, data.get(5..)?));
            }
        }
    }
    number_line(data.strip_prefix(&[sigil])?)
}

/// The second argument of the multibulk request at the front of `data`
/// (the key of a key-routed command), when it is all there.
pub fn request_key(data: &[u8]) -> Option<&[u8]> {
    let (argc, rest) = header(data, b'*')?;
    if argc < 2 {
        return None;
    }
    let (name_len, rest) = header(rest, b'$')?;
    let rest = rest.get(name_len + 2..)?;
    let (key_len, rest) = header(rest, b'$')?;
    rest.get(..key_len)
}

/// Stages 2 and 3 of a batch of lookups whose index buckets were asked for
/// already (`Dict::prefetch_bucket`): each (database, hash) lookup's entry,
/// then its key and value bytes.
pub fn prefetch_entries(dbs: &[Db], hashed: &[(usize, u32)]) {
    let mut positions = [(0, 0); PREFETCH_BATCH];
    let mut n = 0;
    for &(db, h) in hashed.iter().take(PREFETCH_BATCH) {
        if let Some(p) = dbs[db].map.prefetch_slot(h) {
            positions[n] = (db, p);
            n += 1;
        }
    }
    // Only the lookups that found an entry: walking all PREFETCH_BATCH
    // slots (and initialising them as Options) cost a turn of six
    // receives ~70 instructions.
    for &(db, p) in &positions[..n] {
        dbs[db].map.prefetch_key_value(p);
    }
}

/// A set or hash table of at least this many members: `warm_batch_members` looks a
/// pipelined batch's members up ahead. Smaller tables (well under 1 MiB of
/// index, entries and members) stay in the core's cache between batches.
pub const WARM_MIN_LEN: usize = 16 * 1024;

/// Whether `args` (name first) is a one-member command whose member
/// `warm_batch_members` should look up ahead: SADD key member, HSET key
/// field value, HGET key field.
#[inline]
pub fn member_write(name: &[u8], argc: usize) -> bool {
    name.len() == 4
        && match argc {
            3 => name.eq_ignore_ascii_case(b"sadd") || name.eq_ignore_ascii_case(b"hget"),
            4 => name.eq_ignore_ascii_case(b"hset"),
            _ => false,
        }
}

/// The hash-table set or hash that `key` holds, when it has at least
/// `WARM_MIN_LEN` members.
enum BigTable<'a> {
    Set(&'a crate::types::set::Table),
    Hash(&'a crate::types::hash::Table),
}

impl<'a> BigTable<'a> {
    fn of(db: &'a Db, key: &[u8]) -> Option<BigTable<'a>> {
        match &db.map.get(key)?.value {
            Value::Set(Set::Table(t)) if t.len() >= WARM_MIN_LEN => Some(BigTable::Set(t)),
            Value::Hash(Hash::Table(t)) if t.len() >= WARM_MIN_LEN => Some(BigTable::Hash(t)),
            _ => None,
        }
    }

    fn warm(&self, members: &[&[u8]]) {
        match self {
            // In stages, from the index's addresses (`indexed::Indexed::prefetch`).
            BigTable::Set(t) => t.prefetch(members),
            BigTable::Hash(t) => t.prefetch(members),
        }
    }
}

/// A pipelined batch of SADD (or HSET, HGET) on one big hash-table set (or
/// hash), redis-benchmark's SADD and HSET with random members: each
/// member's lookup walks three dependent cache lines (the index's bucket,
/// the entry, the member's bytes), and with an `IndexSet` about half of the
/// shard's time in those tests was the lookup stalled on them, one member
/// after the other. The table's `prefetch` asks for them in stages, each a
/// pass over the batch, before any command runs, so their misses overlap;
/// the commands then find those lines in the cache. A hint only: nothing is
/// changed or counted, and a key that is missing, of another type, or small
/// is left alone.
///
/// The batch is a parse-ahead batch (`prefetch_keys`) that begins with a
/// one-member SADD, HSET or HGET on a key of this shard (`local`); its members are
/// those of the batch's commands with the same number of arguments and a key
/// of the same length and last byte, the test the key prefetch uses (a
/// command it misjudges costs one wasted lookup, never a wrong result). Every
/// other batch (a run of LPUSH, distinct GETs) pays one name test.
pub fn warm_batch_members(db: &Db, buf: &[u8], batch: &[(usize, usize, Args)], local: impl Fn(&[u8]) -> bool) {
    let Some((s, _, a)) = batch.first().filter(|_| batch.len() > 1) else {
        return;
    };
    let argc = a.len();
    if !matches!(argc, 3 | 4) || !member_write(a.get(&buf[*s..], 0), argc) {
        return;
    }
    let key = a.get(&buf[*s..], 1);
    let Some(table) = local(key).then(|| BigTable::of(db, key)).flatten() else {
        return;
    };
    let mut members = [&[][..]; PREFETCH_BATCH];
    let mut m = 0;
    for (s, _, a) in batch.iter().take(PREFETCH_BATCH) {
        if a.len() != argc {
            continue;
        }
        let b = &buf[*s..];
        let k = a.get(b, 1);
        if k.len() == key.len() && k.last() == key.last() {
            members[m] = a.get(b, 2);
            m += 1;
        }
    }
    if m > 1 {
        table.warm(&members[..m]);
    }
}

impl EventLoop {
    /// Asks for the memory the keys of this turn's received requests will
    /// touch (see the module's comment), before any of them runs.
    pub(super) fn prefetch_received(&mut self, cqes: &[(u64, i32, u32)]) {
        if cqes.len() < 2 || self.set.raw_ptrs()[self.id].is_null() {
            return;
        }
        let Some(br) = self.bufring.as_ref() else {
            return;
        };
        let (id, shards) = (self.id, self.server.shard_count);
        let st = self.set.get_mut(id);
        let mut hashed = [(0usize, 0u32); PREFETCH_BATCH];
        let mut n = 0;
        for &(u, res, flags) in cqes {
            let (kind, generation, index) = ud_parts(u);
            if kind != KIND_RECV || res <= 0 {
                continue;
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                continue;
            };
            // Only a request that starts the buffer is parsed from its start.
            let Some(Some(conn)) = self.conns.get(index as usize) else {
                continue;
            };
            if conn.generation != generation || !conn.qbuf.is_empty() || conn.frame.in_progress() {
                continue;
            }
            // SAFETY: the buffer the completion names holds `res` bytes
            // until `on_recv` recycles it, after this returns.
            let data = unsafe { br.data(bid, res as usize) };
            let Some(key) = request_key(data) else {
                continue;
            };
            if shards > 1 && crate::shard::slot::key_shard(key, shards) != id {
                continue;
            }
            let db = conn.client.db;
            let Some(d) = st.dbs.get(db) else {
                continue;
            };
            let h = d.map.hash(key);
            d.map.prefetch_bucket(h);
            hashed[n] = (db, h);
            n += 1;
            if n == PREFETCH_BATCH {
                break;
            }
        }
        if n > 1 {
            prefetch_entries(&st.dbs, &hashed[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_writes_are_sadd_and_hset_of_one_member() {
        assert!(member_write(b"SADD", 3) && member_write(b"sadd", 3) && member_write(b"hSet", 4) && member_write(b"hget", 3));
        // Several members, another command, a wrong arity: not looked up ahead.
        for (name, argc) in [(&b"SADD"[..], 4), (b"HSET", 6), (b"HSET", 3), (b"HGET", 4), (b"SREM", 3), (b"SET", 3), (b"LPUSH", 3), (b"SADDX", 3)] {
            assert!(!member_write(name, argc), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn short_headers_read_as_number_line_does() {
        // Every header of up to three characters before its CR (and a few
        // malformed ones): the compare path and the loop agree.
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for body in ["0", "5", "9", "05", "10", "42", "99", "100", "123", "", "x", "4x", "-1", "1\n"] {
            for tail in ["\r\nrest", "\r\n", "\r", "", "\r\nab"] {
                cases.push(format!("*{body}{tail}").into_bytes());
                cases.push(format!("${body}{tail}").into_bytes());
            }
        }
        for c in &cases {
            for sigil in [b'*', b'$'] {
                let slow = c.strip_prefix(&[sigil]).and_then(number_line);
                assert_eq!(header(c, sigil), slow, "{:?} {}", String::from_utf8_lossy(c), sigil as char);
            }
        }
    }

    #[test]
    fn reads_the_key_of_a_complete_or_partial_request() {
        assert_eq!(request_key(b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n"), Some(&b"hello"[..]));
        assert_eq!(request_key(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000012345\r\n$3\r\nabc\r\n"), Some(&b"key:000000012345"[..]));
        // The key's bytes are there, its CRLF not yet: still a good hint.
        assert_eq!(request_key(b"*2\r\n$3\r\nGET\r\n$5\r\nhello"), Some(&b"hello"[..]));
        assert_eq!(request_key(b"*2\r\n$3\r\nGET\r\n$5\r\nhel"), None);
        assert_eq!(request_key(b"*1\r\n$4\r\nPING\r\n"), None);
        assert_eq!(request_key(b"GET hello\r\n"), None);
        assert_eq!(request_key(b"*2\r\n$3\r\nGET\r\n:5\r\nhello\r\n"), None);
        assert_eq!(request_key(b"*\r\n"), None);
        assert_eq!(request_key(b"*99999999999999999999\r\n"), None);
        assert_eq!(request_key(b""), None);
        // Longer headers take the loop.
        assert_eq!(request_key(b"*2\r\n$3\r\nGET\r\n$100\r\n"), None);
        let long_key = format!("*2\r\n$3\r\nGET\r\n$120\r\n{}\r\n", "k".repeat(120));
        assert_eq!(request_key(long_key.as_bytes()), Some(&long_key.as_bytes()[19..139]));
        assert_eq!(request_key(b"*12\r\n$6\r\nDELETE\r\n$2\r\nab\r\n"), Some(&b"ab"[..]));
    }
}
