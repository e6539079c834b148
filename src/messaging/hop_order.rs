//! A hop's keyspace events and tracking invalidations in execution order
//! (`network::hop`; `held_order` does the same for a held command).
//!
//! A hop runs its per-shard parts on each shard's own thread. Published
//! from there, one command's events would reach a subscriber shard by
//! shard: a RENAME's invalidation of its destination before its source's,
//! an MSET's `set` events out of key order. So a part that left events or
//! invalidations (notifications on, or a tracked key written) hands them
//! back with its answer (`capture`, riding in `PartOps`) instead of
//! publishing them, and the coordinator, when the last part is back,
//! merges them into the command's order (`order`) and publishes them from
//! its one thread (`EventLoop::publish_hop`): invalidations FIFO to each
//! tracking client's shard (and on to a REDIRECT target), events from its
//! own tables (every shard has every notification channel's subscribers
//! and every pattern), so every delivery of an event is stamped
//! (`DeliveryStamps`) before any of the next one's, and every subscriber,
//! exact channel or pattern, reads them in order.
//!
//! **The order.** Redis's: an EXEC's commands in queue order (each part
//! counts what each of its commands left, `CmdEnds`); any other hop
//! command key by key in its key order (MSET's argument order, RENAME and
//! SMOVE source then destination, LMOVE and RPOPLPUSH destination then
//! source as Redis pushes before it pops), each shard's own list keeping
//! its order: per key, the events of that key at the head of its shard's
//! list (a key's channel `__keyspace@db__:key`, or an event whose message
//! is the key), ending where an identical message repeats (the same key
//! named twice). What matches no key follows, in arrival order.
//!
//! **Cost.** With notifications off and nobody tracking a part leaves
//! nothing: two empty checks per part. While a client blocks
//! (`blocking::anyone_waits`) parts publish as before, from their shards:
//! a client a part serves publishes its pop at once, and it must follow
//! the write that fed it. With keyspace events on, multi-shard writes then
//! take the held path instead (`EventLoop::events_need_hold`), whose one
//! list keeps the command's order and puts the served pops after it; what
//! still goes by hops meanwhile (reads: at most an `expired` event) and
//! tracking invalidations publish from the parts' shards.
//!
//! **After the command.** The events are stamped before the hop's reply
//! leaves, and the connection's next hop completes, and its next
//! single-key command runs, only after it (`network::hop`, "Order per
//! connection").

use crate::messaging::tracking::{Outgoing, TrackingMessage};
use crate::shard::ShardState;

/// An event: (channel, message).
pub type Event = (Vec<u8>, Vec<u8>);

/// What a part left for the coordinator to publish.
#[derive(Default)]
pub struct Captured {
    pub events: Vec<Event>,
    pub invalidations: Vec<Outgoing>,
    /// An EXEC part: where each of its commands' events and invalidations
    /// end (positions in the two lists), in its order.
    pub cmd_ends: Vec<(u32, u32)>,
}

impl Captured {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.invalidations.is_empty()
    }
}

/// Whether parts hand their events to the coordinator now (see "Cost").
#[inline]
pub fn capturing() -> bool {
    !crate::messaging::blocking::anyone_waits()
}

/// Takes what the part that just ran on `st` left (None: nothing), into
/// `into` when it has one already (a chain's round 1 and 2).
pub fn capture(st: &mut ShardState, into: Option<Box<Captured>>) -> Option<Box<Captured>> {
    if st.pending_publish.is_empty() && st.tracking.outgoing.is_empty() {
        return into;
    }
    let mut c = into.unwrap_or_default();
    c.events.append(&mut st.pending_publish);
    c.invalidations.append(&mut st.tracking.outgoing);
    Some(c)
}

/// The key an event names: a keyspace channel's key, a keyevent's message.
fn event_key(e: &Event) -> Option<&[u8]> {
    let (channel, message) = (&e.0[..], &e.1[..]);
    let rest = channel.strip_prefix(b"__key")?;
    let space = rest.starts_with(b"space@");
    if !space && !rest.starts_with(b"event@") {
        return None;
    }
    let at = memchr::memmem::find(rest, b"__:")?;
    Some(if space { &rest[at + 3..] } else { message })
}

fn invalidation_key(o: &Outgoing) -> Option<&[u8]> {
    match &o.msg {
        TrackingMessage::Invalidate { key, .. } => Some(key),
        _ => None,
    }
}

fn same_invalidation(a: &Outgoing, b: &Outgoing) -> bool {
    match (&a.msg, &b.msg) {
        (TrackingMessage::Invalidate { client: c1, key: k1, .. }, TrackingMessage::Invalidate { client: c2, key: k2, .. }) => {
            a.to == b.to && c1 == c2 && k1 == k2
        }
        _ => false,
    }
}

/// Moves from `list` (at `*at`) to `out` the items of `key`: a run at the
/// head whose key is `key`, ending where an item equal to one
/// already taken in this run repeats.
fn take_run<T>(list: &mut [Option<T>], at: &mut usize, key: &[u8], key_of: impl Fn(&T) -> Option<&[u8]>, same: impl Fn(&T, &T) -> bool, out: &mut Vec<T>) {
    let start = out.len();
    while let Some(Some(item)) = list.get(*at) {
        if key_of(item).is_none_or(|k| k != key) || out[start..].iter().any(|t| same(t, item)) {
            break;
        }
        out.push(list[*at].take().unwrap());
        *at += 1;
    }
}

/// A part's lists while they are merged: its shard, its events and
/// invalidations (taken as they go), its command boundaries.
type Lists = (usize, Vec<Option<Event>>, Vec<Option<Outgoing>>, Vec<(u32, u32)>);

/// Merges the parts' lists, `batches` in arrival order, into the
/// command's order (see "The order"): by `keys` (key by key), or, with
/// `exec` (each command's shard in queue order), command by command.
pub fn order(batches: Vec<(usize, Box<Captured>)>, keys: &[&[u8]], exec: Option<&[u8]>, events: &mut Vec<Event>, invalidations: &mut Vec<Outgoing>) {
    let mut lists: Vec<Lists> = batches
        .into_iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(s, c)| {
            let c = *c;
            (s, c.events.into_iter().map(Some).collect(), c.invalidations.into_iter().map(Some).collect(), c.cmd_ends)
        })
        .collect();
    let mut at: Vec<(usize, usize, usize)> = vec![(0, 0, 0); lists.len()];
    if let Some(shards) = exec {
        // What came before a part's commands (a round-1 look's expiry)
        // first, then each command's in queue order.
        for (j, l) in lists.iter_mut().enumerate() {
            let (e0, i0) = if l.3.is_empty() { (l.1.len(), l.2.len()) } else { first_cmd_start(l) };
            events.extend(l.1[..e0].iter_mut().filter_map(Option::take));
            invalidations.extend(l.2[..i0].iter_mut().filter_map(Option::take));
            at[j] = (0, e0, i0);
        }
        for &s in shards {
            let Some(j) = lists.iter().position(|l| l.0 == s as usize && !l.3.is_empty()) else { continue };
            let (cmd, e_at, i_at) = at[j];
            let Some(&(e_end, i_end)) = lists[j].3.get(cmd) else { continue };
            let (e_end, i_end) = (e_end as usize, i_end as usize);
            events.extend(lists[j].1[e_at.min(e_end)..e_end].iter_mut().filter_map(Option::take));
            invalidations.extend(lists[j].2[i_at.min(i_end)..i_end].iter_mut().filter_map(Option::take));
            at[j] = (cmd + 1, e_end, i_end);
        }
    } else {
        for key in keys {
            for (j, l) in lists.iter_mut().enumerate() {
                take_run(&mut l.1, &mut at[j].1, key, event_key, |a, b| a == b, events);
                take_run(&mut l.2, &mut at[j].2, key, invalidation_key, same_invalidation, invalidations);
            }
        }
    }
    for l in &mut lists {
        events.extend(l.1.iter_mut().filter_map(Option::take));
        invalidations.extend(l.2.iter_mut().filter_map(Option::take));
    }
}

/// Where an EXEC part's first command's items start: its lists' lengths
/// before it (`cmd_ends` holds ends only; the first start is recorded as
/// a leading `(start, start)` entry by `CmdEnds`).
fn first_cmd_start(l: &mut Lists) -> (usize, usize) {
    let (e, i) = l.3.remove(0);
    (e as usize, i as usize)
}

/// An EXEC part's command boundaries while it runs (reused buffers): its
/// lists' lengths before its first command, then after each.
#[derive(Default)]
pub struct CmdEnds(pub Vec<(u32, u32)>);

impl CmdEnds {
    /// Records `st`'s list lengths now.
    #[inline]
    pub fn note(&mut self, st: &ShardState) {
        self.0.push((st.pending_publish.len() as u32, st.tracking.outgoing.len() as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(c: &str, m: &str) -> Event {
        (c.as_bytes().to_vec(), m.as_bytes().to_vec())
    }

    fn inv(to: usize, key: &str) -> Outgoing {
        Outgoing { to, msg: TrackingMessage::Invalidate { client: 7, modifier: 1, key: key.as_bytes().to_vec() } }
    }

    fn keys_of(list: &[Outgoing]) -> Vec<&[u8]> {
        list.iter().filter_map(invalidation_key).collect()
    }

    #[test]
    fn event_keys() {
        assert_eq!(event_key(&ev("__keyspace@0__:a__:b", "set")), Some(&b"a__:b"[..]));
        assert_eq!(event_key(&ev("__keyevent@12__:set", "k")), Some(&b"k"[..]));
        assert_eq!(event_key(&ev("chan", "k")), None);
    }

    #[test]
    fn merged_by_key_order_keeping_each_parts_order() {
        // MSET a 1 b 2 a 3 c 4 with a, c on one shard and b on another.
        let one = Captured {
            events: vec![
                ev("__keyspace@0__:a", "set"),
                ev("__keyevent@0__:set", "a"),
                ev("__keyspace@0__:a", "set"),
                ev("__keyevent@0__:set", "a"),
                ev("__keyspace@0__:c", "set"),
            ],
            invalidations: vec![inv(0, "a"), inv(0, "c")],
            cmd_ends: Vec::new(),
        };
        let two =
            Captured { events: vec![ev("__keyspace@0__:b", "set"), ev("__keyevent@0__:set", "b")], invalidations: vec![inv(1, "b")], cmd_ends: Vec::new() };
        let (mut e, mut i) = (Vec::new(), Vec::new());
        let keys: [&[u8]; 4] = [b"a", b"b", b"a", b"c"];
        order(vec![(1, Box::new(two)), (0, Box::new(one))], &keys, None, &mut e, &mut i);
        let got: Vec<_> = e.iter().map(|(c, m)| format!("{}={}", String::from_utf8_lossy(c), String::from_utf8_lossy(m))).collect();
        assert_eq!(
            got,
            [
                "__keyspace@0__:a=set",
                "__keyevent@0__:set=a",
                "__keyspace@0__:b=set",
                "__keyevent@0__:set=b",
                "__keyspace@0__:a=set",
                "__keyevent@0__:set=a",
                "__keyspace@0__:c=set"
            ]
        );
        assert_eq!(keys_of(&i), [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn a_key_with_several_events_and_a_foreign_one() {
        // SMOVE x y: srem x, del x on one shard; sadd y on the other; an
        // unrelated event follows the command's.
        let src = Captured { events: vec![ev("__keyevent@0__:srem", "x"), ev("__keyevent@0__:del", "x"), ev("other", "z")], ..Default::default() };
        let dst = Captured { events: vec![ev("__keyevent@0__:sadd", "y")], invalidations: vec![inv(0, "y")], ..Default::default() };
        let (mut e, mut i) = (Vec::new(), Vec::new());
        order(vec![(1, Box::new(dst)), (0, Box::new(src))], &[b"x", b"y"], None, &mut e, &mut i);
        let got: Vec<_> = e.iter().map(|(c, m)| format!("{}={}", String::from_utf8_lossy(c), String::from_utf8_lossy(m))).collect();
        assert_eq!(got, ["__keyevent@0__:srem=x", "__keyevent@0__:del=x", "__keyevent@0__:sadd=y", "other=z"]);
        assert_eq!(keys_of(&i), [&b"y"[..]]);
    }

    #[test]
    fn exec_in_queue_order() {
        // Queue: SET a (shard 0), SET b (shard 1), DEL a (shard 0); shard
        // 0's part also expired a key before its commands.
        let zero = Captured {
            events: vec![ev("__keyevent@0__:expired", "w"), ev("__keyevent@0__:set", "a"), ev("__keyevent@0__:del", "a")],
            invalidations: vec![inv(0, "a"), inv(0, "a")],
            cmd_ends: vec![(1, 0), (2, 1), (3, 2)],
        };
        let one = Captured { events: vec![ev("__keyevent@0__:set", "b")], invalidations: vec![inv(0, "b")], cmd_ends: vec![(0, 0), (1, 1)] };
        let (mut e, mut i) = (Vec::new(), Vec::new());
        order(vec![(1, Box::new(one)), (0, Box::new(zero))], &[], Some(&[0, 1, 0]), &mut e, &mut i);
        let got: Vec<_> = e.iter().map(|(_, m)| String::from_utf8_lossy(m).into_owned()).collect();
        assert_eq!(got, ["w", "a", "b", "a"]);
        assert_eq!(keys_of(&i), [&b"a"[..], b"b", b"a"]);
    }
}
