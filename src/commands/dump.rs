//! DUMP and RESTORE (Redis 7.0's cluster.c): a value as Redis's payload
//! (`persistence/payload.rs`), and a key made from one, with Redis's
//! options, errors and propagation.

use super::lookup::AnyKind;
use super::string::cstr;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::messaging::notify;
use crate::persistence::payload;
use crate::protocol::Reply;
use crate::shard::Entry;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("dump", 2, READONLY, dump)
            .keys(1, 1, 1)
            .acl(&["@keyspace", "@read", "@slow"])
            .doc("2.6.0", "Return a serialized version of the value stored at the specified key."),
        CommandSpec::new("restore", -4, WRITE | DENYOOM, restore)
            .keys(1, 1, 1)
            .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
            .doc("2.6.0", "Create a key using the provided serialized value, previously obtained using DUMP."),
    ]
}

fn dump(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let compress = ctx.config().rdbcompression;
    match ctx.lookup_read::<AnyKind>(args[1]) {
        Ok(Some(e)) => {
            let p = payload::create(&e.value, compress);
            r.bulk(&p);
        }
        _ => r.null(),
    }
}

/// RESTORE's options, parsed before anything is looked at.
#[derive(Debug, Default, PartialEq)]
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    idle_seconds: Option<i64>,
    freq: Option<i64>,
}

fn parse_restore_options(args: &[&[u8]]) -> Result<RestoreOptions, &'static str> {
    let mut o = RestoreOptions::default();
    let mut j = 4;
    while j < args.len() {
        let word = cstr(args[j]);
        let more = j + 1 < args.len();
        if eq_ic(word, "replace") {
            o.replace = true;
        } else if eq_ic(word, "absttl") {
            o.absttl = true;
        } else if eq_ic(word, "idletime") && more && o.freq.is_none() {
            let idle = super::parse_i64(args[j + 1]).ok_or(err::NOT_INTEGER)?;
            if idle < 0 {
                return Err("ERR Invalid IDLETIME value, must be >= 0");
            }
            o.idle_seconds = Some(idle);
            j += 1;
        } else if eq_ic(word, "freq") && more && o.idle_seconds.is_none() {
            let freq = super::parse_i64(args[j + 1]).ok_or(err::NOT_INTEGER)?;
            if !(0..=255).contains(&freq) {
                return Err("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            o.freq = Some(freq);
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], in
/// Redis's order of checks: options, an existing key (BUSYKEY), the TTL,
/// the payload's version and checksum, then its contents.
fn restore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let o = match parse_restore_options(args) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    let exists = matches!(ctx.lookup_write::<AnyKind>(key), Ok(Some(_)));
    if exists && !o.replace {
        return r.error("BUSYKEY Target key name already exists.");
    }
    let Some(mut ttl) = super::parse_i64(args[2]) else {
        return r.error(err::NOT_INTEGER);
    };
    if ttl < 0 {
        return r.error("ERR Invalid TTL value, must be >= 0");
    }
    if !payload::verify(args[3]) {
        return r.error("ERR DUMP payload version or checksum are wrong");
    }
    let Some(value) = payload::load(args[3], &ctx.config().encodings) else {
        return r.error("ERR Bad data format");
    };
    let (db, now) = (ctx.db, ctx.now_ms);
    let deleted = o.replace && exists && ctx.db(key).delete(key);
    if ttl != 0 && !o.absttl {
        ttl = ttl.saturating_add(now);
    }
    if ttl != 0 && ttl <= now {
        // Already expired: the key is only deleted (propagated as DEL).
        if deleted {
            ctx.propagate_as(&[b"DEL", key]);
            ctx.modified(db, key);
            ctx.notify(notify::GENERIC, "del", key);
        }
        return r.ok();
    }
    // Redis's objectSetLRUOrLFU: FREQ sets the counter under an LFU policy,
    // IDLETIME the access time back under any other; else a new object's.
    let access_ms = match (crate::shard::lfu::on(), o.freq, o.idle_seconds) {
        (true, Some(f), _) => crate::shard::lfu::stamp(now, f as u8),
        (false, _, Some(s)) => now.saturating_sub(s.saturating_mul(1000)),
        _ => crate::shard::lfu::fresh(now),
    };
    let expire_at_ms = if ttl != 0 { ttl } else { -1 };
    ctx.db(key).insert_entry(key.into(), Entry { value, expire_at_ms, access_ms });
    if ttl != 0 && !o.absttl {
        // The TTL travels as an absolute time (Redis 7.0).
        let when = itoa::Buffer::new().format(ttl).as_bytes().to_vec();
        let mut argv: Vec<&[u8]> = args.to_vec();
        argv[2] = &when;
        argv.push(b"ABSTTL");
        ctx.propagate_as(&argv);
    }
    ctx.modified(db, key);
    ctx.notify_new(key);
    ctx.notify(notify::GENERIC, "restore", key);
    r.ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_options_as_redis_parses_them() {
        let parse = |a: &[&str]| {
            let mut v: Vec<&[u8]> = vec![b"restore", b"k", b"0", b"p"];
            v.extend(a.iter().map(|s| s.as_bytes()));
            parse_restore_options(&v)
        };
        assert_eq!(parse(&[]), Ok(RestoreOptions::default()));
        assert_eq!(parse(&["REPLACE", "absttl", "IDLETIME", "10"]), Ok(RestoreOptions { replace: true, absttl: true, idle_seconds: Some(10), freq: None }));
        assert_eq!(parse(&["IDLETIME", "-1"]), Err("ERR Invalid IDLETIME value, must be >= 0"));
        assert_eq!(parse(&["IDLETIME", "x"]), Err(err::NOT_INTEGER));
        assert_eq!(parse(&["FREQ", "256"]), Err("ERR Invalid FREQ value, must be >= 0 and <= 255"));
        // IDLETIME and FREQ exclude each other: the second is a syntax error.
        assert_eq!(parse(&["FREQ", "5", "IDLETIME", "1"]), Err(err::SYNTAX));
        assert_eq!(parse(&["IDLETIME"]), Err(err::SYNTAX));
        assert_eq!(parse(&["bogus"]), Err(err::SYNTAX));
    }
}
