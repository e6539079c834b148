//! Pub/sub across shards (Redis's pubsub.c).
//!
//! Each channel has an owner shard: the shard of its hash slot, as if the
//! channel were a key. The owner keeps the channel's subscribers, each a
//! (shard, connection token) pair, in subscription order. PUBLISH runs on
//! the owner (forwarded there like a one-key command): the owner counts the
//! receivers for the reply and queues the message, encoded once per
//! destination shard, with the tokens of that shard's subscribers
//! (`Outgoing`). After the command the owner's loop hands each destination
//! its batch as one mailbox message (`Message::Deliver`), or writes it into
//! its own connections. One owner per channel, and FIFO mailboxes, keep every
//! subscriber's view of a channel in the owner's execution order.
//!
//! Patterns are kept on every shard (each shard has the whole pattern table):
//! the owner of the published channel then counts and serves pattern
//! subscribers with no second hop, and PSUBSCRIBE, which is rare next to
//! PUBLISH, pays for it by holding every shard. A single pattern shard would
//! cost every PUBLISH a second mailbox round trip (for the reply's count) and
//! would deliver pattern messages from another thread than the channel's
//! owner, breaking the per-channel order between `message` and `pmessage`.
//!
//! **Notification channels.** A keyspace event's channel
//! (`__keyspace@<db>__:<key>`, `__keyevent@<db>__:<event>`) hashes to
//! another shard than its key nearly always, and every shard emits on the
//! same `__keyevent` channels. Owned by one shard, its subscribers were
//! served by a message from the emitting shard to the owner, stamped
//! there, later: the next command's events, delivered directly
//! (its channel's owner being the emitting shard), overtook them
//! (tests/command_order.rs, `single_key_events_reach_exact_...`: out of
//! order within the first rounds at 2 shards). So these channels' tables
//! are kept on every shard, as patterns are (`table_shards`): the shard
//! that emits an event serves all its subscribers itself, stamped before
//! the command's reply, in emission order. (UN)SUBSCRIBE of such a channel
//! holds every shard, as PSUBSCRIBE does; PUBLISH, NUMSUB and CHANNELS
//! read the owner's copy (`notification_channel`). Nothing changes for a
//! command while notifications are off.
//!
//! Registration (SUBSCRIBE & co.) is synchronous: the command holds the
//! owner shards and writes their tables before it replies, so a PUBLISH
//! issued after the confirmation was read always finds the subscriber.
//! Disconnection is asynchronous (`Message::PubSubDrop` to each owner): the
//! token of a closed connection is never reused (its generation changed),
//! so a late delivery to it is dropped on arrival.

use crate::messaging::own_pushes::OwnPushes;
use crate::shard::mailbox::ConnToken;
use crate::shard::slot::key_shard;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type IndexSet<K> = indexmap::IndexSet<K, foldhash::fast::RandomState>;
type IndexMap<K, V> = indexmap::IndexMap<K, V, foldhash::fast::RandomState>;

/// A subscribed connection: the shard its connection lives on, and its
/// token there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscriber {
    pub shard: u32,
    pub token: ConnToken,
}

/// The three namespaces of Redis 7.0: channels (SUBSCRIBE), patterns
/// (PSUBSCRIBE) and shard channels (SSUBSCRIBE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    /// The confirmation names (`subscribe`/`unsubscribe` message types).
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

/// One connection's subscriptions (Redis's `c->pubsub_channels`,
/// `c->pubsub_patterns`, `c->pubsubshard_channels`), kept in its
/// `ClientState`.
#[derive(Debug, Default)]
pub struct ClientSubs {
    /// This connection's token on its shard (set at accept).
    pub token: ConnToken,
    pub channels: IndexSet<Vec<u8>>,
    pub patterns: IndexSet<Vec<u8>>,
    pub shard_channels: IndexSet<Vec<u8>>,
}

impl ClientSubs {
    pub fn set(&self, kind: Kind) -> &IndexSet<Vec<u8>> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }
    pub fn set_mut(&mut self, kind: Kind) -> &mut IndexSet<Vec<u8>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }
    /// Redis's `clientSubscriptionsCount`: channels and patterns, the count
    /// (UN)SUBSCRIBE and P(UN)SUBSCRIBE confirmations report.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
    /// The count a confirmation of `kind` reports (S(UN)SUBSCRIBE report
    /// the shard channels alone).
    pub fn count_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard_channels.len(),
            _ => self.count(),
        }
    }
    /// Subscribed to anything (Redis's CLIENT_PUBSUB flag).
    #[inline]
    pub fn any(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty())
    }
}

/// Messages queued for the connections of one destination shard: each
/// message encoded once (RESP2 framing; the first byte becomes `>` for a
/// RESP3 connection), with the tokens of the connections that get it.
#[derive(Debug, Default)]
pub struct DeliveryBatch {
    pub bytes: Vec<u8>,
    /// Per message: the end of its bytes, the end of its tokens, and whether
    /// it goes to a connection that is not subscribed to anything (`queue_to`
    /// with `any_client`; a published message needs a subscriber).
    pub ends: Vec<(u32, u32, bool)>,
    pub tokens: Vec<ConnToken>,
}

impl DeliveryBatch {
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// The messages with their recipients and their `any_client` flag.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[ConnToken], bool)> {
        let mut at = (0usize, 0usize);
        self.ends.iter().map(move |&(b, t, any_client)| {
            let item = (&self.bytes[at.0..b as usize], &self.tokens[at.1..t as usize], any_client);
            at = (b as usize, t as usize);
            item
        })
    }
    fn start_message(&mut self, encoded: &[u8]) {
        self.bytes.extend_from_slice(encoded);
        self.ends.push((self.bytes.len() as u32, self.tokens.len() as u32, false));
    }
    fn add_token(&mut self, token: ConnToken) {
        self.tokens.push(token);
        if let Some(last) = self.ends.last_mut() {
            last.1 = self.tokens.len() as u32;
        }
    }
}

/// Deliveries a shard's commands queued, per destination shard.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub batches: Vec<DeliveryBatch>,
    /// Destinations with a non-empty batch (a bit per shard).
    pub pending: u128,
}

impl Outgoing {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }
    fn batch(&mut self, shard: usize) -> &mut DeliveryBatch {
        if self.batches.len() <= shard {
            self.batches.resize_with(shard + 1, Default::default);
        }
        self.pending |= 1u128 << shard;
        &mut self.batches[shard]
    }
    /// Takes the batch for `shard` (empty if none).
    pub fn take(&mut self, shard: usize) -> DeliveryBatch {
        self.pending &= !(1u128 << shard);
        self.batches.get_mut(shard).map(std::mem::take).unwrap_or_default()
    }
    /// Gives back a batch this shard wrote into its own connections, emptied,
    /// so the next one for this shard reuses its buffers.
    pub fn give_back(&mut self, shard: usize, mut batch: DeliveryBatch) {
        if self.pending & (1u128 << shard) == 0 && batch.bytes.capacity() <= 64 * 1024 {
            batch.bytes.clear();
            batch.ends.clear();
            batch.tokens.clear();
            if self.batches.len() <= shard {
                self.batches.resize_with(shard + 1, Default::default);
            }
            self.batches[shard] = batch;
        }
    }
}

/// Numbers every delivery batch sent to a shard, from one counter per
/// destination, so the destination writes batches in the order they were
/// sent even when they come through different mailboxes.
///
/// Why: a publisher that reads the reply to `PUBLISH a` and then sends
/// `PUBLISH b` expects a subscriber of both to see the message on `a` first,
/// as Redis gives. The owners of `a` and `b` differ; each hands its batch to
/// the subscriber's shard through its own SPSC mailbox, and that shard drains
/// its mailboxes one after the other, so it could find `b`'s batch first
/// (tests/pubsub.rs `publishes_that_follow_each_other_arrive_in_order_across_owners`,
/// 600 such publishes over three owners: out of order in 5 runs of 5
/// without the stamps, in none of 12 with them). The batch
/// for `a` was sent before `b`'s (its owner sends before replying, and the
/// reply led to `b`'s PUBLISH), so its stamp, taken just before sending, is
/// smaller (fetch_add on one atomic follows happens-before, even Relaxed).
/// The destination writes stamp n only after n-1 (`Inbound`), holding a
/// batch that comes early until the gap fills, which takes the time of one
/// mailbox hop. Cost: one uncontended-to-lightly-contended atomic add per
/// batch, not per subscriber.
#[derive(Debug)]
pub struct DeliveryStamps {
    next: Vec<std::sync::atomic::AtomicU64>,
}

impl DeliveryStamps {
    pub fn new(shards: usize) -> DeliveryStamps {
        DeliveryStamps { next: (0..shards).map(|_| std::sync::atomic::AtomicU64::new(0)).collect() }
    }
    /// The stamp of the next batch sent to shard `to`.
    #[inline]
    pub fn take(&self, to: usize) -> u64 {
        self.next[to].fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The receiving side of `DeliveryStamps`: the next stamp to write, and the
/// items (delivery batches, MONITOR lines) that came before their turn.
#[derive(Debug, Default)]
pub struct Inbound<T = DeliveryBatch> {
    pub next: u64,
    pub early: std::collections::BTreeMap<u64, T>,
}

impl<T> Inbound<T> {
    /// Accepts item `stamp`; returns the items now due, in order (the
    /// given one and any held ones that follow it), or none if it is early.
    pub fn accept(&mut self, stamp: u64, batch: T, due: &mut Vec<T>) {
        if stamp != self.next {
            debug_assert!(stamp > self.next, "a delivery stamp came twice");
            self.early.insert(stamp, batch);
            return;
        }
        due.push(batch);
        self.next += 1;
        while let Some(b) = self.early.remove(&self.next) {
            due.push(b);
            self.next += 1;
        }
    }
}

/// A shard's pub/sub state: the channels and shard channels it owns, every
/// pattern (replicated on each shard), and the deliveries its commands
/// queued.
#[derive(Debug, Default)]
pub struct ShardPubSub {
    pub channels: HashMap<Vec<u8>, Vec<Subscriber>>,
    pub shard_channels: HashMap<Vec<u8>, Vec<Subscriber>>,
    pub patterns: IndexMap<Vec<u8>, Vec<Subscriber>>,
    pub outgoing: Outgoing,
    /// Batches sent to this shard, put back in their send order.
    pub inbound: Inbound,
    /// The connection a forwarded command runs for (set by the loop around
    /// a `Message::Request`): a PUBLISH to a channel its own publisher is
    /// subscribed to puts that message in its reply, before the count, as
    /// Redis writes it into the publisher's buffer first.
    pub remote_caller: Option<Subscriber>,
    /// How many of `channels` are notification channels (the same on
    /// every shard): INFO's `pubsub_channels` counts them once.
    pub notification_channels: usize,
    /// Encoding scratch, reused.
    scratch: Vec<u8>,
}

impl ShardPubSub {
    fn table_mut(&mut self, kind: Kind) -> &mut HashMap<Vec<u8>, Vec<Subscriber>> {
        match kind {
            Kind::Shard => &mut self.shard_channels,
            _ => &mut self.channels,
        }
    }

    /// Registers `sub` for `name` (a channel this shard owns, or a pattern).
    pub fn add(&mut self, kind: Kind, name: &[u8], sub: Subscriber) {
        if kind == Kind::Channel && notification_channel(name) && !self.channels.contains_key(name) {
            self.notification_channels += 1;
        }
        let list = match kind {
            Kind::Pattern => self.patterns.entry(name.to_vec()).or_default(),
            _ => self.table_mut(kind).entry(name.to_vec()).or_default(),
        };
        debug_assert!(!list.contains(&sub), "a connection subscribed twice");
        list.push(sub);
    }

    /// Removes `sub` from `name`; an entry left without subscribers goes.
    pub fn remove(&mut self, kind: Kind, name: &[u8], sub: Subscriber) {
        let emptied = match kind {
            Kind::Pattern => match self.patterns.get_mut(name) {
                Some(list) => {
                    list.retain(|s| *s != sub);
                    list.is_empty()
                }
                None => false,
            },
            _ => match self.table_mut(kind).get_mut(name) {
                Some(list) => {
                    list.retain(|s| *s != sub);
                    list.is_empty()
                }
                None => false,
            },
        };
        if emptied {
            match kind {
                Kind::Pattern => {
                    self.patterns.swap_remove(name);
                }
                _ => {
                    self.table_mut(kind).remove(name);
                    if kind == Kind::Channel && notification_channel(name) {
                        self.notification_channels -= 1;
                    }
                }
            }
        }
    }

    /// Removes `sub` from every channel, shard channel and pattern of this
    /// shard's tables (CLIENT KILL: `commands::client::kill_where`). A scan
    /// of the tables, for a rare admin command, so that the killed client
    /// stops counting as a receiver when CLIENT KILL answers, as Redis frees
    /// it in the command; its connection closes at its shard's next cron
    /// (`drop_subscriptions` then finds nothing left to drop).
    pub fn remove_subscriber(&mut self, sub: Subscriber) {
        for kind in [Kind::Channel, Kind::Shard, Kind::Pattern] {
            let names: Vec<Vec<u8>> = match kind {
                Kind::Pattern => self.patterns.iter().filter(|(_, l)| l.contains(&sub)).map(|(n, _)| n.clone()).collect(),
                _ => self.table_mut(kind).iter().filter(|(_, l)| l.contains(&sub)).map(|(n, _)| n.clone()).collect(),
            };
            for name in names {
                self.remove(kind, &name, sub);
            }
        }
    }

    /// Queues `encoded` (RESP2 framing, e.g. from `encode`; a RESP3
    /// connection gets `>` as its first byte) for the one connection `to`,
    /// delivered as published messages are: after the command, in the order
    /// of everything else this shard sends to `to`'s shard, held to the
    /// connection's output-buffer limit, dropped if the connection closed.
    /// Without `any_client` it is dropped unless the connection is
    /// subscribed to something (Redis's CLIENT_PUBSUB test), as client
    /// tracking's `__redis__:invalidate` message to a RESP2 redirect client.
    pub fn queue_to(&mut self, to: Subscriber, encoded: &[u8], any_client: bool) {
        let batch = self.outgoing.batch(to.shard as usize);
        batch.start_message(encoded);
        batch.add_token(to.token);
        if let Some(last) = batch.ends.last_mut() {
            last.2 = any_client;
        }
    }

    /// Subscribers of channel (or shard channel) `name` on this shard.
    pub fn subscribers(&self, kind: Kind, name: &[u8]) -> usize {
        match kind {
            Kind::Shard => self.shard_channels.get(name).map_or(0, |v| v.len()),
            Kind::Channel => self.channels.get(name).map_or(0, |v| v.len()),
            Kind::Pattern => self.patterns.get(name).map_or(0, |v| v.len()),
        }
    }

    /// Redis's `pubsubPublishMessage` on the channel's owner: queues the
    /// message for every subscriber of `channel` and, for a plain channel,
    /// of every matching pattern; returns how many receive it. A delivery to
    /// `caller` itself is written to `caller_out` (the command's reply), in
    /// RESP2 framing, instead of being queued.
    pub fn publish(&mut self, kind: Kind, channel: &[u8], message: &[u8], caller: Option<Subscriber>, caller_out: &mut Vec<u8>) -> i64 {
        let exact = self.publish_exact(kind, channel, message, caller, caller_out);
        let patterns = if kind == Kind::Channel { self.publish_patterns(channel, message, caller, caller_out) } else { 0 };
        exact + patterns
    }

    /// The subscribers of `channel` itself (on its owner; a notification
    /// channel's on any shard).
    pub fn publish_exact(&mut self, kind: Kind, channel: &[u8], message: &[u8], caller: Option<Subscriber>, caller_out: &mut Vec<u8>) -> i64 {
        let table = if kind == Kind::Shard { &self.shard_channels } else { &self.channels };
        let Some(subs) = table.get(channel) else {
            return 0;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let name: &[u8] = if kind == Kind::Shard { b"smessage" } else { b"message" };
        encode(&mut scratch, &[name, channel, message]);
        let receivers = queue(&mut self.outgoing, subs, &scratch, caller, caller_out);
        self.scratch = scratch;
        receivers
    }

    /// The subscribers of every pattern matching `channel` (on any shard:
    /// every shard has every pattern).
    pub fn publish_patterns(&mut self, channel: &[u8], message: &[u8], caller: Option<Subscriber>, caller_out: &mut Vec<u8>) -> i64 {
        let mut receivers = 0i64;
        let mut scratch = std::mem::take(&mut self.scratch);
        {
            for (pattern, subs) in &self.patterns {
                if crate::config::glob_match(pattern, channel, false) {
                    scratch.clear();
                    encode(&mut scratch, &[b"pmessage", pattern, channel, message]);
                    receivers += queue(&mut self.outgoing, subs, &scratch, caller, caller_out);
                }
            }
        }
        self.scratch = scratch;
        receivers
    }
}

/// Publishes the `pending_publish` entries of the shards in `sources` (all
/// reachable through `set`) as PUBLISH would, without a reply, each from
/// the shard that emitted it: every entry is a keyspace notification
/// (`notify::emit` is its one writer), whose channel's table and every
/// pattern are on every shard ("Notification channels"); the deliveries
/// queue in that shard's `outgoing`. Each list keeps its allocation.
pub fn publish_pending(set: &mut crate::shard::hold::ShardSet, sources: crate::shard::hold::ShardMask, own: &mut OwnPushes) {
    for s in sources.iter() {
        if set.get(s).pending_publish.is_empty() {
            continue;
        }
        let st = set.get_mut(s);
        let mut list = std::mem::take(&mut st.pending_publish);
        // So a subscriber, by pattern or by channel, sees one command's
        // events in Redis's order (keyspace before keyevent, one key's
        // events in turn) although their channels have different owners,
        // and before anything a later command emits.
        for (channel, message) in list.drain(..) {
            debug_assert!(notification_channel(&channel), "only notifications queue in pending_publish");
            st.pubsub.publish_patterns(&channel, &message, own.caller, &mut own.raw);
            st.pubsub.publish_exact(Kind::Channel, &channel, &message, own.caller, &mut own.raw);
            own.file_event(&channel, &message);
        }
        if st.pending_publish.is_empty() && list.capacity() <= PENDING_KEEP_ENTRIES {
            st.pending_publish = list;
        }
    }
}

/// An emptied event list is kept for the next command's events up to this
/// many entries (48 bytes each, 1.5 KB): a burst (an eviction run's
/// `evicted` events, a DEL of many keys with notifications on) gives its
/// larger list back to the allocator instead of leaving it counted in
/// `used_memory` for good (Redis queues nothing: it publishes at once).
/// At 256 entries (12 KB a list: each shard's, and each thread's held
/// queue) a fresh 3-shard server under a limit 100 KB over its empty
/// figure kept ~7 KB of lists that no eviction could free, and evicted
/// every key to -OOM in every run of tests/maxmemory.rs's KEA test at 3
/// shards (at 32: one run in five).
pub const PENDING_KEEP_ENTRIES: usize = 32;

/// Publishes a held command's events (`held_order`), `list`, in the order it
/// emitted them, whatever shards their keys are on, from `home`'s tables
/// (every shard has every pattern and every notification channel's
/// subscribers): every delivery queues in `home`'s `outgoing`, so each
/// destination shard gets one batch in that order. `list` is left empty.
pub fn publish_in_order(set: &mut crate::shard::hold::ShardSet, home: usize, list: &mut Vec<(Vec<u8>, Vec<u8>)>, own: &mut OwnPushes) {
    let ps = &mut set.get_mut(home).pubsub;
    for (channel, message) in list.drain(..) {
        debug_assert!(notification_channel(&channel), "only notifications queue in a hold's list");
        ps.publish_patterns(&channel, &message, own.caller, &mut own.raw);
        ps.publish_exact(Kind::Channel, &channel, &message, own.caller, &mut own.raw);
        own.file_event(&channel, &message);
    }
}

/// Queues `encoded` for `subs`, one message per destination shard; returns
/// how many subscribers that is.
fn queue(out: &mut Outgoing, subs: &[Subscriber], encoded: &[u8], caller: Option<Subscriber>, caller_out: &mut Vec<u8>) -> i64 {
    let mut started = 0u128;
    for s in subs {
        if Some(*s) == caller {
            caller_out.extend_from_slice(encoded);
            continue;
        }
        let shard = s.shard as usize;
        let batch = out.batch(shard);
        if started & (1u128 << shard) == 0 {
            started |= 1u128 << shard;
            // One allocation for the tokens of a fresh batch, not a doubling
            // series (100 subscribers cost 7 reallocations).
            if batch.tokens.capacity() == 0 {
                batch.tokens.reserve(subs.len());
            }
            batch.start_message(encoded);
        }
        batch.add_token(s.token);
    }
    subs.len() as i64
}

/// A RESP2 array of bulk strings (a pub/sub message in RESP2 framing).
pub fn encode(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(parts.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for p in parts {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(p.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends a message encoded by `encode` for a connection speaking `resp`:
/// a RESP3 connection gets it as a push (`>`).
#[inline]
pub fn append_for(out: &mut Vec<u8>, encoded: &[u8], resp: u8) {
    let start = out.len();
    out.extend_from_slice(encoded);
    if resp >= 3 {
        out[start] = b'>';
    }
}

/// The length of the message `encode` wrote at the start of `buf` (either
/// framing), or None if `buf` does not start with a complete one.
pub fn message_len(buf: &[u8]) -> Option<usize> {
    fn number(buf: &[u8], from: usize) -> Option<(usize, usize)> {
        let end = from + memchr::memchr(b'\n', buf.get(from..)?)?;
        let n = std::str::from_utf8(buf.get(from + 1..end.checked_sub(1)?)?).ok()?.parse().ok()?;
        Some((n, end + 1))
    }
    if !matches!(buf.first(), Some(b'*' | b'>')) {
        return None;
    }
    let (parts, mut at) = number(buf, 0)?;
    for _ in 0..parts {
        if buf.get(at) != Some(&b'$') {
            return None;
        }
        let (len, start) = number(buf, at)?;
        at = start + len + 2;
    }
    (at <= buf.len()).then_some(at)
}

/// The bytes of the RESP3 pushes (messages a PUBLISH wrote to its own
/// publisher) at the start of a reply: they are sent even when CLIENT REPLY
/// OFF/SKIP drops the reply, as Redis 7.0.15 sends pushes.
pub fn leading_pushes_len(reply: &[u8]) -> usize {
    let mut at = 0;
    while reply.get(at) == Some(&b'>') {
        match message_len(&reply[at..]) {
            Some(n) => at += n,
            None => break,
        }
    }
    at
}

/// The owner shard of a channel (the shard of its hash slot).
#[inline]
pub fn owner(channel: &[u8], shards: usize) -> usize {
    key_shard(channel, shards)
}

/// Whether `channel` is a keyspace notification channel
/// (`__keyspace@...`, `__keyevent@...`): its subscribers are kept on every
/// shard ("Notification channels").
#[inline]
pub fn notification_channel(channel: &[u8]) -> bool {
    channel.starts_with(b"__keyspace@") || channel.starts_with(b"__keyevent@")
}

/// The shards whose tables hold the subscribers of `name` of `kind`: every
/// shard for a pattern or a notification channel, else the owner.
pub fn table_shards(kind: Kind, name: &[u8], shards: usize) -> crate::shard::hold::ShardMask {
    use crate::shard::hold::ShardMask;
    match kind {
        Kind::Pattern => ShardMask::all(shards),
        Kind::Channel if notification_channel(name) => ShardMask::all(shards),
        _ => ShardMask::single(owner(name, shards)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(shard: u32, index: u32) -> Subscriber {
        Subscriber { shard, token: ConnToken { index, generation: 1 } }
    }

    #[test]
    fn publish_batches_one_message_per_destination_and_counts_patterns() {
        let mut ps = ShardPubSub::default();
        for i in 0..4 {
            ps.add(Kind::Channel, b"news", sub(i % 2, i));
        }
        ps.add(Kind::Pattern, b"n*", sub(1, 9));
        ps.add(Kind::Pattern, b"x*", sub(0, 8));
        let mut mine = Vec::new();
        let n = ps.publish(Kind::Channel, b"news", b"hi", Some(sub(0, 2)), &mut mine);
        assert_eq!(n, 5);
        assert_eq!(mine, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
        ps.queue_to(sub(0, 7), b"*1\r\n$1\r\nx\r\n", true);
        let b0 = ps.outgoing.take(0);
        let items: Vec<_> = b0.iter().collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].1.len(), 1, "shard 0: subscriber 0 (2 is the caller)");
        assert!(!items[0].2);
        assert_eq!(items[1], (&b"*1\r\n$1\r\nx\r\n"[..], &[sub(0, 7).token][..], true));
        let b1 = ps.outgoing.take(1);
        let items: Vec<_> = b1.iter().collect();
        assert_eq!(items.len(), 2, "the channel message and the pattern message");
        assert_eq!(items[0].1.len(), 2);
        assert_eq!(items[1].0, b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
        assert!(ps.outgoing.is_empty());
    }

    #[test]
    fn shard_channels_are_their_own_namespace_and_empty_entries_go() {
        let mut ps = ShardPubSub::default();
        ps.add(Kind::Shard, b"c", sub(0, 1));
        let mut mine = Vec::new();
        assert_eq!(ps.publish(Kind::Channel, b"c", b"m", None, &mut mine), 0);
        assert_eq!(ps.publish(Kind::Shard, b"c", b"m", None, &mut mine), 1);
        ps.remove(Kind::Shard, b"c", sub(0, 1));
        assert!(ps.shard_channels.is_empty());
        ps.add(Kind::Pattern, b"p*", sub(0, 1));
        ps.remove(Kind::Pattern, b"p*", sub(0, 1));
        assert!(ps.patterns.is_empty());
    }

    #[test]
    fn inbound_batches_are_written_in_stamp_order() {
        let batch = |n: u8| {
            let mut b = DeliveryBatch::default();
            b.start_message(&[n]);
            b
        };
        let mut inbound = Inbound::default();
        let mut due = Vec::new();
        inbound.accept(1, batch(1), &mut due);
        inbound.accept(2, batch(2), &mut due);
        assert!(due.is_empty(), "1 and 2 wait for 0");
        inbound.accept(0, batch(0), &mut due);
        assert_eq!(due.iter().map(|b| b.bytes[0]).collect::<Vec<_>>(), [0, 1, 2]);
        due.clear();
        inbound.accept(3, batch(3), &mut due);
        assert_eq!(due.len(), 1);
        assert!(inbound.early.is_empty());
    }

    #[test]
    fn pending_publish_is_served_by_the_emitting_shard_whatever_the_channels_owner() {
        use crate::shard::hold::{ShardMask, ShardSet};
        use crate::shard::ShardState;
        let shards = 2;
        let mut states: Vec<Box<ShardState>> = (0..shards).map(|i| Box::new(ShardState::new(i, shards, crate::config::Config::default()))).collect();
        let name_on = |shard: usize| (0..).map(|i| format!("__keyspace@0__:k{i}").into_bytes()).find(|n| owner(n, shards) == shard).unwrap();
        let (mine, theirs) = (name_on(0), name_on(1));
        assert_eq!(table_shards(Kind::Channel, &theirs, shards), ShardMask::all(shards));
        assert_eq!(table_shards(Kind::Channel, b"plain", shards), ShardMask::single(owner(b"plain", shards)));
        // Shard 0's copies of both tables (SUBSCRIBE writes every shard's).
        states[0].pubsub.add(Kind::Channel, &mine, sub(1, 4));
        states[0].pubsub.add(Kind::Channel, &theirs, sub(1, 4));
        states[0].pubsub.add(Kind::Pattern, b"__key*", sub(0, 5));
        states[0].pubsub.add(Kind::Channel, b"plain", sub(0, 6));
        assert_eq!(states[0].pubsub.notification_channels, 2);
        states[0].pending_publish.push((mine.clone(), b"m1".to_vec()));
        states[0].pending_publish.push((theirs.clone(), b"m2".to_vec()));
        let mut set = ShardSet::new(shards);
        // SAFETY: the box outlives the set's use below and nothing else touches it.
        unsafe { set.set(0, &mut *states[0] as *mut ShardState) };
        // The pattern subscriber is the writer (`own_pushes`): its two
        // messages come out of the publication, framed as pushes.
        let mut own = OwnPushes::default();
        own.start(sub(0, 5), 3, "set");
        publish_pending(&mut set, ShardMask::single(0), &mut own);
        own.stop();
        // SAFETY: null is always allowed.
        unsafe { set.set(0, std::ptr::null_mut()) };
        assert!(states[0].pending_publish.is_empty() && states[0].pending_publish.capacity() >= 2);
        let to_1 = states[0].pubsub.outgoing.take(1);
        let got: Vec<_> = to_1.iter().map(|(b, t, _)| (b.to_vec(), t.len())).collect();
        assert_eq!(got, vec![(message(b"message", &mine, b"m1"), 1), (message(b"message", &theirs, b"m2"), 1)], "in emission order, from the emitting shard");
        let to_0 = states[0].pubsub.outgoing.take(0);
        assert_eq!(to_0.iter().count(), 0, "the pattern subscriber on shard 0 is the writer");
        let pmessage = |channel: &[u8], payload: &[u8]| {
            let mut v = Vec::new();
            encode(&mut v, &[b"pmessage", b"__key*", channel, payload]);
            v[0] = b'>';
            v
        };
        let pushes = [pmessage(&mine, b"m1"), pmessage(&theirs, b"m2")].concat();
        assert_eq!((own.before.clone(), own.after.len()), (pushes, 0), "before the reply, in emission order");
        states[0].pubsub.remove(Kind::Channel, &mine, sub(1, 4));
        states[0].pubsub.remove(Kind::Channel, b"plain", sub(0, 6));
        assert_eq!((states[0].pubsub.notification_channels, states[0].pubsub.channels.len()), (1, 1));
    }

    fn message(kind: &[u8], channel: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(&mut v, &[kind, channel, payload]);
        v
    }

    #[test]
    fn message_lengths_and_leading_pushes() {
        let mut b = Vec::new();
        encode(&mut b, &[b"message", b"c\r\nx", b""]);
        let one = b.len();
        encode(&mut b, &[b"pmessage", b"p", b"c", b"m"]);
        assert_eq!(message_len(&b), Some(one));
        assert_eq!(message_len(&b[one..]), Some(b.len() - one));
        assert_eq!(message_len(&b[..one - 1]), None);
        assert_eq!(leading_pushes_len(&b), 0, "RESP2 framing is no push");
        b[0] = b'>';
        b[one] = b'>';
        let pushes = b.len();
        b.extend_from_slice(b":1\r\n");
        assert_eq!(leading_pushes_len(&b), pushes);
        assert_eq!(leading_pushes_len(b":1\r\n"), 0);
    }

    #[test]
    fn resp3_framing_is_a_push() {
        let mut out = Vec::new();
        let mut enc = Vec::new();
        encode(&mut enc, &[b"message", b"c", b"m"]);
        append_for(&mut out, &enc, 3);
        assert_eq!(out, b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    }
}
