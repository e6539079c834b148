//! A stream outside memory: its RDB object (Redis 7.0's
//! `RDB_TYPE_STREAM_LISTPACKS_2`; 5.0's `_LISTPACKS` and 7.2's `_3` load
//! too), the checks a foreign one passes before use, its AOF rewrite
//! (XADD, XSETID, XGROUP CREATE/CREATECONSUMER, XCLAIM, as Redis emits
//! them), DEBUG DIGEST's fold and MEMORY USAGE's estimate.

use std::collections::BTreeSet;

use super::listpack::{self, Entry as Item, Listpack};
use super::stream::{Stream, StreamId, FLAG_DELETED, FLAG_SAMEFIELDS};
use super::stream_cg::{Consumer, Group, Nack};
use crate::persistence::rdb::{self, Encoder, LoadError, LoadErrorClass, Reader, Sink};
use crate::shard::digest::Digest;

fn item_bytes<'a>(e: Item<'a>, b: &'a mut itoa::Buffer) -> &'a [u8] {
    match e {
        Item::Str(s) => s,
        Item::Int(v) => b.format(v).as_bytes(),
    }
}

/// DEBUG DIGEST's fold of a stream (`xorObjectDigest`): each entry's
/// `ms.seq`, then its fields and values, in order; groups are not part of it.
pub fn mix_digest(d: &mut Digest, s: &Stream) {
    let (mut a, mut b) = (itoa::Buffer::new(), itoa::Buffer::new());
    s.range(StreamId::MIN, StreamId::MAX, false, |id, pairs| {
        let mut text = Vec::with_capacity(42);
        text.extend_from_slice(a.format(id.ms).as_bytes());
        text.push(b'.');
        text.extend_from_slice(a.format(id.seq).as_bytes());
        d.mix_hash(&text);
        for (f, v) in pairs {
            d.mix_hash(item_bytes(*f, &mut a));
            d.mix_hash(item_bytes(*v, &mut b));
        }
        true
    });
}

/// MEMORY USAGE of a stream (`objectComputeSize`): the stream struct, the
/// rax and its nodes' listpacks (sampled), and the groups with their PELs
/// and consumers.
pub fn memory_usage(s: &Stream, samples: usize) -> usize {
    // sizeof(stream), the rax header, a rax node per listpack.
    let mut size = 80 + 24 + s.nodes.len() * 24;
    let n = s.nodes.len();
    let (mut sampled, mut sum) = (0usize, 0usize);
    for lp in s.nodes.values().take(samples) {
        sum += lp.total_bytes();
        sampled += 1;
    }
    size += sum.checked_div(sampled).map_or(0, |average| average * n);
    for g in s.groups.values() {
        // streamCG, its two raxes, a NACK (and rax slot) per pending entry.
        size += 40 + 48 + g.pel.len() * (24 + 32);
        for (name, c) in &g.consumers {
            size += 32 + name.len() + 24 + c.pel.len() * 32;
        }
    }
    size
}

/// The AOF rewrite of a stream (`rewriteStreamObject`).
pub fn rewrite_commands(buf: &mut Vec<u8>, key: &[u8], s: &Stream) {
    use crate::persistence::aof::append_command;
    let mut n = itoa::Buffer::new();
    if s.length > 0 {
        s.range(StreamId::MIN, StreamId::MAX, false, |id, pairs| {
            let mut argv: Vec<Vec<u8>> = Vec::with_capacity(3 + pairs.len() * 2);
            argv.push(b"XADD".to_vec());
            argv.push(key.to_vec());
            argv.push(id.to_bytes());
            for (f, v) in pairs {
                argv.push(f.to_vec());
                argv.push(v.to_vec());
            }
            append_command(buf, &argv);
            true
        });
    } else {
        append_command(buf, &[&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    }
    let entries_added = n.format(s.entries_added).as_bytes().to_vec();
    append_command(buf, &[&b"XSETID"[..], key, &s.last_id.to_bytes(), b"ENTRIESADDED", &entries_added, b"MAXDELETEDID", &s.max_deleted_entry_id.to_bytes()]);
    for (name, g) in &s.groups {
        let read = n.format(g.entries_read).as_bytes().to_vec();
        append_command(buf, &[&b"XGROUP"[..], b"CREATE", key, name, &g.last_id.to_bytes(), b"ENTRIESREAD", &read]);
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                append_command(buf, &[&b"XGROUP"[..], b"CREATECONSUMER", key, name, cname]);
                continue;
            }
            for id in &c.pel {
                let Some(nack) = g.pel.get(id) else { continue };
                let time = n.format(nack.delivery_time).as_bytes().to_vec();
                let count = itoa::Buffer::new().format(nack.delivery_count).as_bytes().to_vec();
                append_command(buf, &[&b"XCLAIM"[..], key, name, cname, b"0", &id.to_bytes(), b"TIME", &time, b"RETRYCOUNT", &count, b"JUSTID", b"FORCE"]);
            }
        }
    }
}

impl Encoder {
    /// A stream's RDB object (`rdbSaveObject`, `RDB_TYPE_STREAM_LISTPACKS_2`).
    pub(crate) fn save_stream(&mut self, s: &Stream, sink: &mut Sink<'_>) {
        self.save_len(s.nodes.len() as u64);
        for (master, lp) in &s.nodes {
            self.save_string(&master.encode());
            self.save_string(lp.as_bytes());
            self.spill(sink);
        }
        self.save_len(s.length);
        for v in [s.last_id.ms, s.last_id.seq, s.first_id.ms, s.first_id.seq, s.max_deleted_entry_id.ms, s.max_deleted_entry_id.seq, s.entries_added] {
            self.save_len(v);
        }
        self.save_len(s.groups.len() as u64);
        for (name, g) in &s.groups {
            self.save_string(name);
            self.save_len(g.last_id.ms);
            self.save_len(g.last_id.seq);
            self.save_len(g.entries_read as u64);
            self.save_len(g.pel.len() as u64);
            for (id, nack) in &g.pel {
                self.buf.extend_from_slice(&id.encode());
                self.buf.extend_from_slice(&nack.delivery_time.to_le_bytes());
                self.save_len(nack.delivery_count);
            }
            self.save_len(g.consumers.len() as u64);
            for (cname, c) in &g.consumers {
                self.save_string(cname);
                self.buf.extend_from_slice(&c.seen_time.to_le_bytes());
                self.save_len(c.pel.len() as u64);
                for id in &c.pel {
                    self.buf.extend_from_slice(&id.encode());
                }
            }
            self.spill(sink);
        }
    }
}

fn corrupt<T>(at: usize, reason: impl Into<String>) -> Result<T, LoadError> {
    Err(LoadError { offset: at, reason: reason.into(), class: LoadErrorClass::Corrupt(0) })
}

fn int_entry(e: Option<Item<'_>>) -> Result<i64, String> {
    match e {
        Some(Item::Int(v)) => Ok(v),
        Some(Item::Str(s)) => listpack::string_to_int(s).ok_or_else(|| "stream listpack element is not an integer".to_string()),
        None => Err("stream listpack ends inside an entry".into()),
    }
}

/// `streamValidateListpackIntegrity` deep: the master entry, then every
/// entry's flags, delta ID, fields and `lp-count`; IDs ascend from the
/// master's and past `prev`. Returns the node's last ID and live count.
fn validate_node(master: StreamId, lp: &Listpack, prev: Option<StreamId>) -> Result<(StreamId, i64), String> {
    let mut it = lp.iter();
    let count = int_entry(it.next())?;
    let deleted = int_entry(it.next())?;
    let nfields = int_entry(it.next())?;
    if count < 0 || deleted < 0 || nfields < 0 {
        return Err("negative count in a stream master entry".into());
    }
    for _ in 0..nfields {
        it.next().ok_or("stream master entry ends early")?;
    }
    if int_entry(it.next())? != 0 {
        return Err("stream master entry terminator is not 0".into());
    }
    let (mut live, mut dead) = (0i64, 0i64);
    let mut last = prev;
    while let Some(flags) = it.next() {
        let flags = int_entry(Some(flags))?;
        let ms = int_entry(it.next())? as u64;
        let seq = int_entry(it.next())? as u64;
        // Deltas wrap as Redis's unsigned arithmetic (6-0 after a 1-1 master is a seq delta of -1).
        let id = StreamId::new(master.ms.wrapping_add(ms), master.seq.wrapping_add(seq));
        if id < master {
            return Err("stream entry ID below its node's master ID".into());
        }
        if last.is_some_and(|l| id <= l) {
            return Err("stream IDs are not in order".into());
        }
        last = Some(id);
        let elements = if flags & FLAG_SAMEFIELDS != 0 {
            for _ in 0..nfields {
                it.next().ok_or("stream entry ends early")?;
            }
            nfields + 3
        } else {
            let n = int_entry(it.next())?;
            if n < 0 {
                return Err("negative field count in a stream entry".into());
            }
            for _ in 0..n * 2 {
                it.next().ok_or("stream entry ends early")?;
            }
            2 * n + 4
        };
        if int_entry(it.next())? != elements {
            return Err("stream entry lp-count mismatch".into());
        }
        if flags & FLAG_DELETED != 0 {
            dead += 1;
        } else {
            live += 1;
        }
    }
    if live != count || dead != deleted {
        return Err("stream master entry counts mismatch".into());
    }
    if live == 0 {
        return Err("Empty listpack inside stream".into());
    }
    Ok((last.unwrap_or(master), live))
}

fn load_id(r: &mut Reader) -> Result<StreamId, LoadError> {
    let ms = r.plain_len()?;
    let seq = r.plain_len()?;
    Ok(StreamId::new(ms, seq))
}

fn raw_id(r: &mut Reader) -> Result<StreamId, LoadError> {
    let at = r.pos;
    let b = r.bytes(16)?;
    StreamId::decode(b).map_or_else(|| corrupt(at, "bad stream ID"), Ok)
}

fn ms_time(r: &mut Reader) -> Result<i64, LoadError> {
    Ok(i64::from_le_bytes(r.bytes(8)?.try_into().expect("8 bytes")))
}

/// Loads a stream object of `rdb_type` (15, 19 or 21), checked deeply.
pub(crate) fn load_stream(r: &mut Reader, rdb_type: u8) -> Result<Stream, LoadError> {
    let mut s = Stream::new();
    let nodes = r.plain_len()?;
    let mut prev = None;
    let mut total: i64 = 0;
    for _ in 0..nodes {
        let at = r.pos;
        let key = r.string()?;
        let Some(master) = StreamId::decode(&key) else {
            return corrupt(at, "Stream node key entry is not the size of a stream ID");
        };
        let at = r.pos;
        let blob = r.string()?;
        let lp = Listpack::from_bytes(blob).or_else(|e| corrupt(at, format!("Stream listpack integrity check failed. ({})", e)))?;
        if lp.is_empty() {
            return corrupt(at, "Empty listpack inside stream");
        }
        if prev.is_some_and(|p| master <= p) {
            return corrupt(at, "Listpack re-added with existing key");
        }
        let (last, live) = validate_node(master, &lp, prev).or_else(|e| corrupt(at, format!("Stream listpack integrity check failed. ({})", e)))?;
        prev = Some(last);
        total += live;
        s.nodes.insert(master, lp);
    }
    let at = r.pos;
    s.length = r.plain_len()?;
    if s.length != total as u64 {
        return corrupt(at, "Stream length inconsistent with rax entries");
    }
    s.last_id = load_id(r)?;
    if prev.is_some_and(|p| p > s.last_id) {
        return corrupt(at, "Stream last ID is smaller than its entries");
    }
    if rdb_type >= rdb::TYPE_STREAM_LISTPACKS_2 {
        s.first_id = load_id(r)?;
        s.max_deleted_entry_id = load_id(r)?;
        s.entries_added = r.plain_len()?;
    } else {
        s.entries_added = s.length;
        s.first_id = s.edge_id(true).unwrap_or(StreamId::MAX);
    }
    let groups = r.plain_len()?;
    for _ in 0..groups {
        let at = r.pos;
        let name = r.string()?;
        let last_id = load_id(r)?;
        let entries_read = if rdb_type >= rdb::TYPE_STREAM_LISTPACKS_2 { r.plain_len()? as i64 } else { s.estimate_entries_read(last_id) };
        if s.groups.contains_key(&name) {
            return corrupt(at, format!("Duplicated consumer group name {}", String::from_utf8_lossy(&name)));
        }
        let mut g = Group::new(last_id, entries_read);
        let pel = r.plain_len()?;
        for _ in 0..pel {
            let at = r.pos;
            let id = raw_id(r)?;
            let delivery_time = ms_time(r)?;
            let delivery_count = r.plain_len()?;
            if g.pel.insert(id, Nack { delivery_time, delivery_count, consumer: Vec::new() }).is_some() {
                return corrupt(at, "Duplicated global PEL entry loading stream consumer group");
            }
        }
        // A NACK's consumer name is empty until a consumer claims it; the
        // IDs a consumer named "" claims (it can be) are kept apart, or they
        // would look unclaimed (and claimable twice).
        let mut claimed_by_unnamed = BTreeSet::new();
        let consumers = r.plain_len()?;
        for _ in 0..consumers {
            let at = r.pos;
            let cname = r.string()?;
            if g.consumers.contains_key(&cname) {
                return corrupt(at, "Duplicate stream consumer detected.");
            }
            let seen_time = ms_time(r)?;
            let active_time = if rdb_type >= rdb::TYPE_STREAM_LISTPACKS_3 { ms_time(r)? } else { seen_time };
            let mut c = Consumer { seen_time, active_time, pel: BTreeSet::new() };
            let n = r.plain_len()?;
            for _ in 0..n {
                let at = r.pos;
                let id = raw_id(r)?;
                let Some(nack) = g.pel.get_mut(&id) else {
                    return corrupt(at, "Consumer entry not found in group global PEL");
                };
                if !nack.consumer.is_empty() || claimed_by_unnamed.contains(&id) || !c.pel.insert(id) {
                    return corrupt(at, "Duplicated consumer PEL entry loading a stream consumer group");
                }
                if cname.is_empty() {
                    claimed_by_unnamed.insert(id);
                }
                nack.consumer = cname.clone();
            }
            g.consumers.insert(cname, c);
        }
        if g.pel.iter().any(|(id, n)| n.consumer.is_empty() && !claimed_by_unnamed.contains(id)) {
            return corrupt(at, "Stream CG PEL entry without consumer");
        }
        s.groups.insert(name, g);
    }
    Ok(s)
}
