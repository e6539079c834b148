//! MIGRATE (Redis 7.0's cluster.c `migrateCommand`): keys sent to another
//! server as RESTORE commands over a plain connection, then deleted here
//! (unless COPY). As in Redis the command blocks its caller's thread for the
//! transfer, up to `timeout` ms per step; here that is the shards owning the
//! keys (held for a multi-shard KEYS list), not the whole server.
//!
//! Connections are cached per target as Redis's `migrateGetSocket` does:
//! kept 10 s after their last use (closed by the cron, `close_idle`), at
//! most 64 per shard thread (a full cache drops one to make room), with the
//! target's selected db, so that SELECT is sent only when it changes. A
//! cached socket that fails before any reply is read is dropped and the
//! MIGRATE tried once more on a new connection (the target may have closed
//! it while idle), as Redis retries. INFO's `migrate_cached_sockets` counts
//! them over every shard.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::lookup::AnyKind;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::messaging::notify;
use crate::persistence::payload;
use crate::protocol::Reply;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    vec![CommandSpec::new("migrate", -6, WRITE, migrate)
        .keys(3, 3, 1)
        .find_keys(migrate_keys)
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .doc("2.6.0", "Atomically transfer a key from a Redis instance to another one.")]
}

/// Redis's `migrateGetKeys`: the key at 3, or the keys after KEYS (then the
/// key at 3 must be empty).
/// AUTH's password and AUTH2's user and password are skipped, as Redis
/// does: a password spelled KEYS is not the keyword.
fn migrate_keys(args: &[&[u8]], out: &mut Vec<usize>) {
    let mut j = 6;
    while j < args.len() {
        let a = args[j];
        if eq_ic(a, "keys") {
            if args[3].is_empty() {
                out.extend(j + 1..args.len());
            }
            return;
        }
        j += if eq_ic(a, "auth") {
            2
        } else if eq_ic(a, "auth2") {
            3
        } else {
            1
        };
    }
    out.push(3);
}

/// Redis's `MIGRATE_SOCKET_CACHE_TTL`: an idle cached connection closes after this.
const CACHED_SOCKET_IDLE_MS: i64 = 10_000;
/// Redis's `MIGRATE_SOCKET_CACHE_ITEMS`, here per shard thread.
const CACHED_SOCKETS_MAX: usize = 64;

/// A connection kept for the next MIGRATE to the same target.
struct Cached {
    stream: TcpStream,
    /// The db the target has selected (-1: none yet).
    db: i64,
    last_use_ms: i64,
}

thread_local! {
    /// This shard thread's cached connections, by "host:port".
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

/// Cached connections over every shard (INFO `migrate_cached_sockets`).
static CACHED_SOCKETS: AtomicUsize = AtomicUsize::new(0);

pub fn cached_sockets() -> usize {
    CACHED_SOCKETS.load(Ordering::Relaxed)
}

/// The cron's part (`migrateCloseTimedoutSockets`): closes this thread's
/// connections idle for `CACHED_SOCKET_IDLE_MS`. One load when none is cached.
pub fn close_idle(now_ms: i64) {
    if cached_sockets() == 0 {
        return;
    }
    CACHE.with_borrow_mut(|cache| {
        let before = cache.len();
        cache.retain(|_, c| now_ms - c.last_use_ms <= CACHED_SOCKET_IDLE_MS);
        CACHED_SOCKETS.fetch_sub(before - cache.len(), Ordering::Relaxed);
    });
}

/// Takes the cached connection to `target` out of the cache (put back by
/// `keep` after a successful exchange).
fn take_cached(target: &str) -> Option<Cached> {
    let c = CACHE.with_borrow_mut(|cache| cache.remove(target))?;
    CACHED_SOCKETS.fetch_sub(1, Ordering::Relaxed);
    Some(c)
}

fn keep(target: String, c: Cached) {
    CACHE.with_borrow_mut(|cache| {
        if cache.len() >= CACHED_SOCKETS_MAX {
            // Full: one goes, as Redis drops a random one.
            if let Some(k) = cache.keys().next().cloned() {
                cache.remove(&k);
                CACHED_SOCKETS.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if cache.insert(target, c).is_none() {
            CACHED_SOCKETS.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// MIGRATE's options, parsed before anything is looked at.
#[derive(Debug, Default, PartialEq)]
struct Options<'a> {
    copy: bool,
    replace: bool,
    username: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    /// Index of the first key in the arguments; the keys run to the end
    /// with KEYS, else it is the one key at 3.
    first_key: usize,
    keys: usize,
}

fn parse<'a>(args: &[&'a [u8]]) -> Result<Options<'a>, &'static str> {
    let mut o = Options { first_key: 3, keys: 1, ..Default::default() };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - j - 1;
        let a = args[j];
        if eq_ic(a, "copy") {
            o.copy = true;
        } else if eq_ic(a, "replace") {
            o.replace = true;
        } else if eq_ic(a, "auth") {
            if more == 0 {
                return Err(err::SYNTAX);
            }
            j += 1;
            o.password = Some(args[j]);
        } else if eq_ic(a, "auth2") {
            if more < 2 {
                return Err(err::SYNTAX);
            }
            o.username = Some(args[j + 1]);
            o.password = Some(args[j + 2]);
            j += 2;
        } else if eq_ic(a, "keys") {
            if !args[3].is_empty() {
                return Err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string");
            }
            o.first_key = j + 1;
            o.keys = args.len() - j - 1;
            break;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// Appends one RESP command.
fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

const CONNECT_ERROR: &str = "IOERR error or timeout connecting to the client";
const WRITE_ERROR: &str = "IOERR error or timeout writing to target instance";

fn migrate(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    let (Some(mut timeout_ms), Some(dbid)) = (super::parse_i64(args[5]), super::parse_i64(args[4])) else {
        return r.error(err::NOT_INTEGER);
    };
    if timeout_ms <= 0 {
        timeout_ms = 1000;
    }
    // The keys that exist, with their values' payloads and remaining TTLs
    // (a key that expired on the way is skipped, as in Redis).
    let compress = ctx.config().rdbcompression;
    let now = ctx.now_ms;
    let mut found: Vec<(&[u8], i64, Vec<u8>)> = Vec::new();
    for k in &args[o.first_key..o.first_key + o.keys] {
        if let Ok(Some(e)) = ctx.lookup_read::<AnyKind>(k) {
            let ttl = if e.expire_at_ms >= 0 { (e.expire_at_ms - now).max(1) } else { 0 };
            found.push((k, ttl, payload::create(&e.value, compress)));
        }
    }
    if found.is_empty() {
        return r.simple("NOKEY");
    }
    let timeout = Duration::from_millis(timeout_ms as u64);
    let host = String::from_utf8_lossy(args[1]);
    let port = String::from_utf8_lossy(args[2]);
    let target = format!("{}:{}", host, port);
    let (moved, error) = match exchange(&target, timeout, &o, dbid, &found, now, true) {
        Ok(done) => done,
        Err(e) => return r.error(e),
    };
    // The keys the target took are deleted here, propagated as one DEL.
    let moved: Vec<&[u8]> = moved.iter().map(|&i| found[i].0).collect();
    if !moved.is_empty() {
        let db = ctx.db;
        for k in &moved {
            if ctx.db(k).remove(k).is_some() {
                ctx.modified(db, k);
                ctx.notify(notify::GENERIC, "del", k);
            }
        }
        let mut del: Vec<&[u8]> = vec![b"DEL"];
        del.extend(moved.iter().copied());
        ctx.propagate_as(&del);
    }
    match error {
        Some(line) => target_error(r, &line),
        None => r.ok(),
    }
}

/// The keys `found` (key, TTL, payload) sent to `target` over a cached or
/// new connection: the indexes of those the target took and its first
/// error line, or the error MIGRATE answers. `may_retry`: a cached
/// connection that fails before any reply is read is dropped and the
/// exchange tried once more on a new one.
#[allow(clippy::type_complexity)]
fn exchange(
    target: &str,
    timeout: Duration,
    o: &Options,
    dbid: i64,
    found: &[(&[u8], i64, Vec<u8>)],
    now_ms: i64,
    may_retry: bool,
) -> Result<(Vec<usize>, Option<Vec<u8>>), &'static str> {
    let cached = take_cached(target);
    let from_cache = cached.is_some();
    let conn = match cached {
        Some(c) => c,
        None => {
            let Some(addr) = target.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
                return Err(CONNECT_ERROR);
            };
            let stream = match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => s,
                // Redis connects without blocking and waits until the socket is
                // writable, which a refused connection also is: the refusal shows
                // when it writes.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err(WRITE_ERROR),
                Err(_) => return Err(CONNECT_ERROR),
            };
            let _ = stream.set_nodelay(true);
            Cached { stream, db: -1, last_use_ms: now_ms }
        }
    };
    let retry = |e: &'static str| {
        if from_cache && may_retry {
            exchange(target, timeout, o, dbid, found, now_ms, false)
        } else {
            Err(e)
        }
    };
    let stream = &conn.stream;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    // AUTH, SELECT when the target's db changes, then one RESTORE per key:
    // sent at once, answered in order.
    let mut out = Vec::new();
    match (o.username, o.password) {
        (Some(user), Some(pass)) => encode(&mut out, &[b"AUTH", user, pass]),
        (None, Some(pass)) => encode(&mut out, &[b"AUTH", pass]),
        _ => {}
    }
    let select = conn.db != dbid;
    if select {
        let db = dbid.to_string();
        encode(&mut out, &[b"SELECT", db.as_bytes()]);
    }
    for (k, ttl, p) in found {
        let ttl = ttl.to_string();
        let mut cmd: Vec<&[u8]> = vec![b"RESTORE", k, ttl.as_bytes(), p];
        if o.replace {
            cmd.push(b"REPLACE");
        }
        encode(&mut out, &cmd);
    }
    let mut writer = stream;
    if writer.write_all(&out).is_err() {
        return retry(WRITE_ERROR);
    }
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut read_reply = |line: &mut Vec<u8>| -> bool {
        line.clear();
        matches!(reader.read_until(b'\n', line), Ok(n) if n > 0 && line.ends_with(b"\r\n"))
    };
    const READ_ERROR: &str = "IOERR error or timeout reading to target instance";
    let preamble = usize::from(o.password.is_some()) + usize::from(select);
    for n in 0..preamble {
        if !read_reply(&mut line) {
            return if n == 0 { retry(READ_ERROR) } else { Err(READ_ERROR) };
        }
        if line[0] == b'-' {
            // A failed AUTH or SELECT: the connection (its RESTORE replies
            // unread) is not kept.
            return Ok((Vec::new(), Some(line)));
        }
    }
    let mut error: Option<Vec<u8>> = None;
    let mut moved = Vec::new();
    for (i, _) in found.iter().enumerate() {
        if !read_reply(&mut line) {
            return if i == 0 && preamble == 0 { retry(READ_ERROR) } else { Err(READ_ERROR) };
        }
        if line[0] == b'-' {
            error.get_or_insert_with(|| line.clone());
        } else if !o.copy {
            moved.push(i);
        }
    }
    drop(reader);
    // After a target's error its db is no longer assumed (Redis's
    // `last_dbid = -1`): the next MIGRATE selects again.
    let db = if error.is_some() { -1 } else { dbid };
    keep(target.to_string(), Cached { stream: conn.stream, db, last_use_ms: now_ms });
    Ok((moved, error))
}

/// Redis's "Target instance replied with error: ..." (the target's error
/// line without its '-').
fn target_error(r: &mut Reply, line: &[u8]) {
    let msg = String::from_utf8_lossy(&line[1..line.len() - 2]);
    r.error(&format!("ERR Target instance replied with error: {}", msg));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &[&'static str]) -> Vec<&'static [u8]> {
        s.iter().map(|x| x.as_bytes()).collect()
    }

    #[test]
    fn options_and_keys() {
        let args = a(&["migrate", "h", "1", "", "0", "5000", "COPY", "AUTH2", "u", "p", "KEYS", "a", "b"]);
        let o = parse(&args).unwrap();
        assert_eq!((o.copy, o.replace, o.username, o.password, o.first_key, o.keys), (true, false, Some(&b"u"[..]), Some(&b"p"[..]), 11, 2));
        let mut keys = vec![];
        migrate_keys(&args, &mut keys);
        assert_eq!(keys, [11, 12]);
        let args = a(&["migrate", "h", "1", "k", "0", "5000", "REPLACE", "AUTH", "pw"]);
        let o = parse(&args).unwrap();
        assert_eq!((o.replace, o.password, o.first_key, o.keys), (true, Some(&b"pw"[..]), 3, 1));
        let mut keys = vec![];
        migrate_keys(&args, &mut keys);
        assert_eq!(keys, [3]);
        // A password spelled KEYS is not the keyword.
        let args = a(&["migrate", "h", "1", "", "0", "5000", "AUTH", "KEYS", "KEYS", "rw"]);
        let mut keys = vec![];
        migrate_keys(&args, &mut keys);
        assert_eq!(keys, [9]);
        assert_eq!(
            parse(&a(&["migrate", "h", "1", "k", "0", "5000", "KEYS", "a"])),
            Err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string")
        );
        assert_eq!(parse(&a(&["migrate", "h", "1", "k", "0", "5000", "AUTH"])), Err(err::SYNTAX));
        assert_eq!(parse(&a(&["migrate", "h", "1", "k", "0", "5000", "nope"])), Err(err::SYNTAX));
    }
}
