//! A writer's own keyspace-event pushes, where Redis 7.0 writes them.
//!
//! A RESP3 connection subscribed to keyspace or keyevent channels that
//! writes a key receives the events of its own command. Redis writes a
//! push into the client's buffer the moment `notifyKeyspaceEvent` runs, so
//! it lands where the handler was in its reply: `SET` notifies, then
//! replies (`>4 pmessage ...` before `+OK`); `LPUSH` replies, then
//! notifies; `LMOVE` pushes the destination (its event), replies, then pops
//! the source (its events); inside EXEC each command's events come before
//! or after its own element. ringkv publishes events after the command
//! (`delivery`), from the shard that emitted them, which may not be the
//! writer's: delivered like anyone else's, they came after the reply.
//!
//! So while a command of such a client runs, its deliveries to itself are
//! taken out of the publication (`pubsub::publish_pending`, `caller`) into
//! `before` and `after`, and the route that runs the command puts them
//! around its reply: the local path around the bytes the handler wrote, a
//! forwarded command's shard around the reply it sends back, EXEC around
//! each element. Which events follow the reply is Redis's handler order,
//! data in `follows_reply` (measured against redis-server 7.0.15, one
//! RESP3 connection `PSUBSCRIBE`d to `__key*@0__:*`).
//!
//! Cost: a connection that is not a RESP3 subscriber never sets `caller`;
//! with notifications off nothing is published at all.

use crate::messaging::pubsub::{self, Subscriber};

/// The running command's own pushes, split around its reply.
#[derive(Debug, Default)]
pub struct OwnPushes {
    /// The writer (its shard and connection) while its command's events
    /// are published; None otherwise.
    pub caller: Option<Subscriber>,
    /// The writer's protocol (pushes are framed `>` in RESP3).
    pub resp: u8,
    /// The running command's name (`follows_reply`'s key).
    pub command: &'static str,
    /// Messages for the writer, RESP2-framed, from the publication of one
    /// event (`pubsub::queue`'s `caller_out`).
    pub raw: Vec<u8>,
    /// Pushes that go before the reply, framed for `resp`.
    pub before: Vec<u8>,
    /// Pushes that go after the reply.
    pub after: Vec<u8>,
}

impl OwnPushes {
    /// Starts collecting for `caller`, which runs `command`.
    pub fn start(&mut self, caller: Subscriber, resp: u8, command: &'static str) {
        self.caller = Some(caller);
        self.resp = resp;
        self.command = command;
    }

    /// Stops collecting (the collected pushes stay until taken).
    pub fn stop(&mut self) {
        self.caller = None;
    }

    /// Whether pushes wait to be placed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }

    /// Files what the publication of event (`channel`, `message`) wrote to
    /// `raw` before or after the reply.
    pub fn file_event(&mut self, channel: &[u8], message: &[u8]) {
        if self.raw.is_empty() {
            return;
        }
        let out = if follows_reply(self.command, event_name(channel, message)) { &mut self.after } else { &mut self.before };
        let mut rest: &[u8] = &self.raw;
        while let Some(len) = pubsub::message_len(rest) {
            pubsub::append_for(out, &rest[..len], self.resp);
            rest = &rest[len..];
        }
        self.raw.clear();
    }

    /// Puts the pushes around the reply at `reply_start..` of `out` (the
    /// reply is the rest of `out`).
    pub fn place(&mut self, out: &mut Vec<u8>, reply_start: usize) {
        if !self.before.is_empty() {
            out.splice(reply_start..reply_start, self.before.drain(..));
        }
        out.append(&mut self.after);
    }
}

/// What a dropped reply (CLIENT REPLY OFF/SKIP) keeps of `data`: the pushes
/// before and after the reply itself (a command's own events, a PUBLISH's
/// messages to its publisher), as Redis 7.0.15 writes pushes whatever the
/// reply mode. Returns the end of the leading pushes and the start of the
/// trailing ones (`data.len()` when the reply cannot be measured).
pub fn kept_when_discarded(data: &[u8]) -> (usize, usize) {
    let lead = pubsub::leading_pushes_len(data);
    match frame_end(data, lead) {
        Some(end) if end < data.len() => (lead, end),
        _ => (lead, data.len()),
    }
}

/// The end of the RESP2/RESP3 frame at `at` of `buf`, if whole.
fn frame_end(buf: &[u8], at: usize) -> Option<usize> {
    let kind = *buf.get(at)?;
    let line_end = at + memchr::memchr(b'\n', buf.get(at..)?)?;
    let after = line_end + 1;
    let number = || -> Option<i64> { std::str::from_utf8(buf.get(at + 1..line_end.checked_sub(1)?)?).ok()?.parse().ok() };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(after),
        b'$' | b'=' | b'!' => match number()? {
            n if n < 0 => Some(after),
            n => Some(after + n as usize + 2).filter(|&e| e <= buf.len()),
        },
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            let n = number()?;
            let items = if matches!(kind, b'%' | b'|') { n.max(0) * 2 } else { n.max(0) };
            let mut end = after;
            for _ in 0..items {
                end = frame_end(buf, end)?;
            }
            Some(end)
        }
        _ => None,
    }
}

/// The event of a notification: the message on a keyspace channel, the
/// channel's last part on a keyevent one.
fn event_name<'a>(channel: &'a [u8], message: &'a [u8]) -> &'a [u8] {
    if channel.starts_with(b"__keyspace@") {
        return message;
    }
    match memchr::memmem::find(channel, b"__:") {
        Some(at) => &channel[at + 3..],
        None => channel,
    }
}

/// Whether Redis 7.0 writes `event` of `command` after the command's reply:
/// its handler replies before it notifies. Every other event (those of
/// most commands, a lazily expired key's, a `new` key's) comes first.
/// ZPOPMIN/ZPOPMAX/BZPOP*/ZMPOP notify between their array header and
/// its elements: those stay after the reply here (a known difference).
pub fn follows_reply(command: &str, event: &[u8]) -> bool {
    let events: &[&[u8]] = match command {
        "lpush" | "lpushx" => &[b"lpush"],
        "rpush" | "rpushx" => &[b"rpush"],
        "lset" => &[b"lset"],
        // Pops reply with the element, then tell of the pop and the
        // emptied key; a move pushes (before) and then pops.
        "lpop" | "rpop" | "lmpop" | "blpop" | "brpop" | "blmpop" | "lmove" | "blmove" | "rpoplpush" | "brpoplpush" => &[b"lpop", b"rpop", b"del"],
        // SPOP of the last member: the reply, then the key's deletion.
        "spop" => &[b"del"],
        "getset" => &[b"set"],
        "getdel" => &[b"del"],
        "getex" => &[b"expire", b"persist", b"del"],
        "bitfield" => &[b"setbit"],
        // A time in the past deletes first ("del" before the reply).
        "expire" | "pexpire" | "expireat" | "pexpireat" => &[b"expire"],
        "hset" | "hsetnx" | "hmset" => &[b"hset"],
        "hincrby" => &[b"hincrby"],
        "hincrbyfloat" => &[b"hincrbyfloat"],
        "zadd" | "geoadd" => &[b"zadd", b"zincr"],
        "zincrby" => &[b"zincr"],
        "sinterstore" => &[b"sinterstore"],
        "sunionstore" => &[b"sunionstore"],
        "sdiffstore" => &[b"sdiffstore"],
        "zunionstore" => &[b"zunionstore"],
        "zinterstore" => &[b"zinterstore"],
        "zdiffstore" => &[b"zdiffstore"],
        "zrangestore" => &[b"zrangestore"],
        "xadd" => &[b"xadd", b"xtrim"],
        _ => return false,
    };
    events.contains(&event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_around_the_reply_as_redis() {
        assert!(!follows_reply("set", b"set"));
        assert!(follows_reply("lpush", b"lpush"));
        // LPUSH onto an expired key: its expiry first, the push after.
        assert!(!follows_reply("lpush", b"expired"));
        assert!(!follows_reply("expire", b"del"));
        assert!(follows_reply("lmove", b"lpop") && !follows_reply("lmove", b"rpush"));
        assert_eq!(event_name(b"__keyspace@0__:a:b", b"set"), b"set");
        assert_eq!(event_name(b"__keyevent@12__:lpush", b"k"), b"lpush");
    }

    #[test]
    fn a_dropped_reply_keeps_the_pushes_on_both_sides() {
        let data = b">2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n:1\r\n%1\r\n+k\r\n$-1\r\n>1\r\n$0\r\n\r\n";
        assert_eq!(kept_when_discarded(data), (18, 39));
        assert_eq!(kept_when_discarded(b":1\r\n"), (0, 4));
        assert_eq!(kept_when_discarded(b":1\r\n>1\r\n$1\r\nx\r\n"), (0, 4));
        assert_eq!(kept_when_discarded(b"$5\r\nab"), (0, 6));
    }

    #[test]
    fn pushes_are_placed_around_the_reply_in_the_writer_framing() {
        let mut own = OwnPushes::default();
        own.start(Subscriber { shard: 0, token: Default::default() }, 3, "lpush");
        pubsub::encode(&mut own.raw, &[b"pmessage", b"*", b"__keyspace@0__:l", b"expired"]);
        own.file_event(b"__keyspace@0__:l", b"expired");
        pubsub::encode(&mut own.raw, &[b"pmessage", b"*", b"__keyspace@0__:l", b"lpush"]);
        own.file_event(b"__keyspace@0__:l", b"lpush");
        own.stop();
        let mut out = b"+OK\r\n:1\r\n".to_vec();
        own.place(&mut out, 5);
        let expired = b">4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$16\r\n__keyspace@0__:l\r\n$7\r\nexpired\r\n";
        let lpush = b">4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$16\r\n__keyspace@0__:l\r\n$5\r\nlpush\r\n";
        assert_eq!(out, [&b"+OK\r\n"[..], expired, b":1\r\n", lpush].concat());
        assert!(own.is_empty());
    }
}
