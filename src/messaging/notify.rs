//! Keyspace notifications (Redis's notify.c): `notify-keyspace-events`
//! parsed and printed as Redis 7.0 does, and the one function every command
//! calls to announce an event on a key.
//!
//! An event is not published here: the shard that owns the key appends the
//! (channel, message) pairs to `ShardState::pending_publish`, and the pub/sub
//! machinery delivers them after the command as `PUBLISH channel message`
//! would (without a reply). Per key the events keep execution order, since
//! one shard owns the key and runs its commands one at a time.
//!
//! Cost when notifications are off (the default): `ShardState::notify` is
//! inlined into the caller as one load of the shard's config copy and one
//! branch on `flags & class`; the formatting lives out of line.

use crate::commands::Ctx;
use crate::shard::{ShardState, Stored};

/// `K`: `__keyspace@<db>__:<key>` -> event.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: `__keyevent@<db>__:<event>` -> key.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key expired (lazily or by the active cycle).
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key evicted for maxmemory (`shard::memory`).
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands (ringkv has no streams).
pub const STREAM: u32 = 1 << 10;
/// `m`: a read lookup missed; not part of `A`, as in Redis.
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (accepted and printed; ringkv has no modules).
pub const MODULE: u32 = 1 << 13;
/// `n`: a key was added to a database; not part of `A`, as in Redis.
pub const NEW: u32 = 1 << 14;
/// `A`: Redis's NOTIFY_ALL.
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// CONFIG SET's reason for a string `parse` refuses (Redis's text).
pub const INVALID_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Redis's `keyspaceEventsStringToFlags`: None for a character outside
/// `Ag$lshzxeKEtmdn`.
pub fn parse(classes: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for c in classes {
        flags |= match c {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Redis's `keyspaceEventsFlagsToString`, quirk included: with every class
/// of `A` set, `A` is printed and `n` is not, though it stays in force.
pub fn format(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                out.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            out.push(c);
        }
    }
    out
}

/// Appends the messages of `event` on `key` of database `db` to `pending`
/// when `flags` enables `class` (Redis's `notifyKeyspaceEvent`): the
/// keyspace message first, then the keyevent one.
#[inline]
pub fn emit(pending: &mut Vec<(Vec<u8>, Vec<u8>)>, flags: u32, db: usize, class: u32, event: &str, key: &[u8]) {
    if flags & class != 0 {
        emit_enabled(pending, flags, db, event, key);
    }
}

#[cold]
#[inline(never)]
fn emit_enabled(pending: &mut Vec<(Vec<u8>, Vec<u8>)>, flags: u32, db: usize, event: &str, key: &[u8]) {
    let mut digits = itoa::Buffer::new();
    let db = digits.format(db).as_bytes();
    let channel = |kind: &[u8], name: &[u8]| {
        let mut c = Vec::with_capacity(kind.len() + db.len() + 3 + name.len());
        c.extend_from_slice(kind);
        c.extend_from_slice(db);
        c.extend_from_slice(b"__:");
        c.extend_from_slice(name);
        c
    };
    if flags & KEYSPACE != 0 {
        pending.push((channel(b"__keyspace@", key), event.as_bytes().to_vec()));
    }
    if flags & KEYEVENT != 0 {
        pending.push((channel(b"__keyevent@", event.as_bytes()), key.to_vec()));
    }
}

impl ShardState {
    /// `event` of `class` happened to `key` of database `db`, a key this
    /// shard owns: queued for publication when the class is enabled.
    /// Under a hold, the event queues on the holding thread instead, in
    /// the command's order over every shard it holds (`held_order`).
    #[inline]
    pub fn notify(&mut self, db: usize, class: u32, event: &str, key: &[u8]) {
        let flags = self.config.notify_keyspace_events;
        if flags & class != 0 {
            self.notify_enabled(flags, db, event, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn notify_enabled(&mut self, flags: u32, db: usize, event: &str, key: &[u8]) {
        crate::messaging::held_order::events_into(&mut self.pending_publish, |pending| emit_enabled(pending, flags, db, event, key));
    }

    /// `key` was added to database `db` (Redis's `dbAdd`): the `new` event.
    #[inline]
    pub fn notify_new(&mut self, db: usize, key: &[u8]) {
        self.notify(db, NEW, "new", key);
    }

    /// What storing `key` with `Db::set` did, made known: a key that had
    /// expired is reported expired, then (like a missing one) added.
    #[inline(always)]
    pub fn stored(&mut self, db: usize, key: &[u8], outcome: Stored) {
        match outcome {
            Stored::Replaced => {}
            Stored::Added => self.notify_new(db, key),
            Stored::ReplacedExpired => self.stored_over_expired(db, key),
        }
    }

    #[cold]
    #[inline(never)]
    fn stored_over_expired(&mut self, db: usize, key: &[u8]) {
        self.expired(db, key);
        self.notify_new(db, key);
    }
}

impl Ctx<'_> {
    /// `event` of `class` on `key` of the client's database, queued on the
    /// shard owning the key (see `ShardState::notify`). Off: one branch.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        let db = self.db;
        self.notify_in(db, class, event, key);
    }

    /// `notify` for database `db` (MOVE, COPY ... DB).
    #[inline]
    pub fn notify_in(&mut self, db: usize, class: u32, event: &str, key: &[u8]) {
        // Every shard has the same config: the home shard's says whether
        // the key's shard need be found at all.
        if self.shards.get(self.home).config.notify_keyspace_events & class != 0 {
            self.shards.of(key).notify(db, class, event, key);
        }
    }

    /// `key` was added to the client's database (`new`).
    #[inline]
    pub fn notify_new(&mut self, key: &[u8]) {
        self.notify(NEW, "new", key);
    }

    /// `ShardState::stored` for `key` of the client's database.
    #[inline]
    pub fn stored(&mut self, key: &[u8], outcome: Stored) {
        if outcome != Stored::Replaced {
            let db = self.db;
            self.shards.of(key).stored(db, key, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against redis-server 7.0.15's CONFIG SET / CONFIG GET.
    #[test]
    fn flags_read_and_print_as_redis() {
        let round = |s: &str| parse(s.as_bytes()).map(format);
        assert_eq!(round("KEA").as_deref(), Some("AKE"));
        assert_eq!(round("AKE").as_deref(), Some("AKE"));
        assert_eq!(round("Kn").as_deref(), Some("nK"));
        assert_eq!(round("Kgn").as_deref(), Some("gnK"));
        assert_eq!(round("g$lshzxetdn").as_deref(), Some("A"));
        assert_eq!(round("Eg$lshzxetdnK").as_deref(), Some("AKE"));
        assert_eq!(round("m").as_deref(), Some("m"));
        assert_eq!(round("Ex").as_deref(), Some("xE"));
        assert_eq!(round("KEAmn").as_deref(), Some("AKEm"));
        assert_eq!(round("").as_deref(), Some(""));
        assert_eq!(round("Ad").as_deref(), Some("A"));
        assert_eq!(round("KEq"), None);
        assert_eq!(round("a"), None);
        // `n` survives the printing quirk.
        assert_ne!(parse(b"An").unwrap() & NEW, 0);
    }

    #[test]
    fn channels_and_messages() {
        let mut p = vec![];
        emit(&mut p, KEYSPACE | KEYEVENT | GENERIC, 3, GENERIC, "del", b"k\x00y");
        emit(&mut p, KEYSPACE | KEYEVENT | GENERIC, 3, STRING, "set", b"k");
        emit(&mut p, KEYEVENT | LIST, 12, LIST, "lpush", b"l");
        emit(&mut p, GENERIC | LIST, 0, LIST, "lpush", b"l");
        let text: Vec<(&[u8], &[u8])> = p.iter().map(|(c, m)| (&c[..], &m[..])).collect();
        assert_eq!(
            text,
            vec![(&b"__keyspace@3__:k\x00y"[..], &b"del"[..]), (&b"__keyevent@3__:del"[..], &b"k\x00y"[..]), (&b"__keyevent@12__:lpush"[..], &b"l"[..]),]
        );
    }
}
