//! The merge of the shards' write streams (`exec::propagate`) into one
//! stream, for the AOF writer (`aof_file`) and the replication feeder
//! (`replication::feeder`): one lane per shard, fed with the batches the
//! shards hand over, emptied into one byte stream in an order that keeps
//! (1) every shard's own order, (2) every multi-shard command's unit at its
//! cut, and (3) **causal order**: a write whose reply (or any reply of a
//! command that saw it) a client got precedes every write that client
//! issued afterwards, whatever the shards. Redis, single-threaded, gives
//! one total order; a replica (or an AOF replayed after a crash, its tail
//! lost) then never shows a state the master never had: no `B` without
//! `A` when `B` was sent after `A`'s reply.
//!
//! **The key of a batch** is its hand-over number (`seq`), drawn under the
//! consumer's inbox lock, so the inbox is in key order and a batch not yet
//! taken in has a key above every batch taken. The invariant that makes
//! keys causal: *a shard hands a batch over before any reply of a command
//! whose write it holds leaves* (the loop hands over at the end of its turn
//! before its sends; a shard hands over before it answers another shard
//! for a client: a forwarded command's reply, a hop part's answer, a pop
//! for a client blocked elsewhere, a pub/sub message or keyspace event
//! delivered elsewhere (`EventLoop::hand_over_before_answer`); the holder
//! of a multi-shard command records the cut in its own stream, which it
//! hands over before its reply, and the merge holds everything after that
//! cut back until the held shards' bytes are in). So if a client saw a reply that
//! depends on write `a` and then sent write `b`, `a`'s batch was pushed
//! before `b` ran, hence before `b`'s batch: key(a) < key(b). Merging
//! whole batches in key order is therefore causal; nothing on the hot path
//! pays for it (the number existed already: it is the AOF's group-commit
//! sequence and replication's WAIT sequence). No batch is waited for: the
//! inbox lock orders them, so a quiet shard stalls nothing.
//!
//! **Cuts** (see `exec::propagate`): the bytes of a lane past one of its
//! cuts go out only after the cut's unit, which goes out once every lane of
//! the cut has written up to it. The merge (`merge`) takes, batch by batch,
//! the lane whose next unwritten byte has the lowest key and writes it up to
//! the end of that batch or its next cut. When that lane waits at a cut
//! whose other lanes have not reached theirs, those lanes write up to it
//! out of key order (a *jump*; a lane with another cut ahead of it jumps
//! to that one, whose lanes jump in turn, and so on: `jump_towards`), then
//! the unit goes out and key order resumes. Nothing else moves meanwhile:
//! every byte with a higher key than the waiting lane's waits behind it.
//!
//! A jump is causal for a held command (MSET, DEL over shards, FLUSHALL,
//! an EXEC under a hold...): the held shards are parked at one instant,
//! when the cut is drawn, so their bytes before it (and those before any
//! cut of a held command ahead of it in their lanes) ran before that
//! instant, while the waiting lane's next batch was handed over after it,
//! as was every batch waiting behind it: none of those can be a cause of
//! a jumped byte. The unit itself stands at the cut's instant, after what
//! it follows and before what follows it in every held shard.
//!
//! **Hops** (`network::hop`) park nobody: each shard records its cut when
//! its part runs, the carrier (whose part runs last) appends the unit at
//! its own. Per-key order and the unit at one cut hold as in
//! `exec::propagate`; causal order holds except across the window between
//! the hop's first part and its carrier's part, for writes to *other* keys
//! of the hop's shards (its own keys are marked until their part ran): a
//! write `b` on a shard whose part already ran follows the unit in the
//! stream; if a client saw `b`'s reply and then wrote key `a` of the
//! carrier's shard before the carrier's part ran, `a` precedes the unit
//! and so `b`, its cause. (A hop's cut positions are different instants;
//! making them one needs a hold, which hops exist to avoid. Jumps towards
//! a cut with a hop's cut ahead of it inherit the same window.) The stream
//! is still consistent per key, with the hop atomic.
//!
//! **Not covered**: replies a shard sends while a script runs past
//! `busy-reply-threshold` (`network::script::serve_busy`) can acknowledge
//! writes of the same turn not handed over yet (the running script holds
//! the shard's state, so it cannot hand over then); a client acting on
//! such a reply can see its next write merged first.
//!
//! **Inserts** (replication-only commands, `Stream::repl_insert`) travel
//! in their batch and go out at their position.
//!
//! **SELECTs and `#TS:` annotations.** A stream selects its db again
//! after every take and every cut, since the merge may switch streams
//! there; merged as they are, a FLUSHALL between two SETs of db 9 read
//! `SELECT 9, set, SELECT 9, flushall, SELECT 9, set`, where Redis writes
//! one SELECT (`feedAppendOnlyFile` selects only when the db changes).
//! Likewise with aof-timestamp-enabled every shard's stream annotates each
//! second it writes in, where Redis writes one `#TS:` line when the second
//! changes. So each batch brings where its SELECTs and annotations are
//! (`Stream::take`: its marks), and the merge leaves out a SELECT of the
//! db its output has selected already and an annotation of a second not
//! later than the last one it wrote (`Selected`): one comparison per mark,
//! no parsing of the bytes. (An annotation of an earlier second comes after
//! a later one when a shard's batch of the earlier second is merged after
//! another's of the later: Redis, which annotates the second a command runs
//! in, never goes back, and `redis-check-aof --truncate-to-timestamp` cuts
//! at the first annotation past its time, so the older one is left out.)
//! The output's db is known only through those SELECTs: one that is not
//! whole in the bytes written, or an insert (which selects its own db),
//! makes it unknown, and the next SELECT is kept. The AOF writer forgets
//! both where the bytes before may not be in the file (a new incr file, a
//! dropped buffer).

use std::collections::VecDeque;

use crate::exec::propagate::Cut;
use crate::persistence::aof::append::Mark;

/// One batch in a lane.
struct Seg {
    /// Hand-over number: the merge key.
    seq: u64,
    /// Stream position of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
    /// Its replication-only commands, each at its stream position (see
    /// `Stream::repl_insert`; never in the AOF's lanes).
    inserts: VecDeque<(u64, Vec<u8>)>,
    /// Its SELECTs and annotations, as (stream position, mark), in order.
    marks: VecDeque<(u64, Mark)>,
}

impl Seg {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// The bytes of one shard not yet written, from its position `written`.
#[derive(Default)]
pub(crate) struct Lane {
    written: u64,
    segs: VecDeque<Seg>,
    cuts: VecDeque<Cut>,
    /// (end position, sequence number) of the batches not fully written.
    ends: VecDeque<(u64, u64)>,
}

/// What the merged output selected and annotated last (see the module).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Selected {
    /// The db (None: unknown, the next SELECT is written).
    pub db: Option<usize>,
    /// The second of the last `#TS:` annotation (None: the next one is
    /// written).
    pub stamp: Option<i64>,
    /// Bytes of the lanes left out (marks the output had already), for
    /// the AOF writer's count of bytes handed over and not written yet.
    pub left_out: u64,
}

impl Selected {
    /// Knows nothing: the next SELECT and annotation are written.
    pub fn forget(&mut self) {
        self.db = None;
        self.stamp = None;
    }
}

/// The hand-over number up to which every batch of `lanes` is merged
/// (`received`: the last one taken in).
pub(crate) fn merged_through(lanes: &mut [Lane], received: u64) -> u64 {
    let mut first_open = u64::MAX;
    for lane in lanes.iter_mut() {
        while lane.ends.front().is_some_and(|&(end, _)| end <= lane.written) {
            lane.ends.pop_front();
        }
        if let Some(&(_, seq)) = lane.ends.front() {
            first_open = first_open.min(seq);
        }
    }
    if first_open == u64::MAX {
        received
    } else {
        first_open - 1
    }
}

impl Lane {
    /// Takes in one batch handed over (numbered `seq`, above every batch
    /// taken in before by any lane), with where it SELECTs and annotates
    /// (`marks`: all of them, or none for a consumer that does not leave
    /// any out).
    pub(crate) fn ingest(&mut self, seq: u64, start: u64, bytes: Vec<u8>, cuts: Vec<Cut>, inserts: Vec<(u64, Vec<u8>)>, marks: Vec<(u64, Mark)>) {
        self.ends.push_back((start + bytes.len() as u64, seq));
        if self.segs.is_empty() && self.written < start {
            self.written = start;
        }
        // A batch of inserts alone keeps its place in key order too.
        if !bytes.is_empty() || !inserts.is_empty() {
            self.segs.push_back(Seg { seq, start, bytes, inserts: inserts.into(), marks: marks.into() });
        }
        self.cuts.extend(cuts);
    }

    fn available(&self) -> u64 {
        self.segs.back().map_or(self.written, Seg::end)
    }

    /// The key of the next byte (or insert) to write: its batch's number.
    fn head_key(&self) -> Option<u64> {
        self.segs.front().map(|s| s.seq)
    }

    /// Waits at its next cut.
    fn at_cut(&self) -> bool {
        self.cuts.front().is_some_and(|c| c.at == self.written)
    }

    /// Writes the front batch up to its end or the next cut.
    fn write_batch(&mut self, out: &mut Vec<u8>, db: &mut Selected) {
        let Some(seg) = self.segs.front() else { return };
        let to = self.cuts.front().map_or(u64::MAX, |c| c.at).min(seg.end());
        self.write_to(to, out, db);
    }

    /// Moves bytes up to position `to` into `out`, with the inserts up to
    /// there. A batch's inserts at its start go out only once it is the
    /// front one (not with the end of the batch before it).
    fn write_to(&mut self, to: u64, out: &mut Vec<u8>, db: &mut Selected) {
        while let Some(seg) = self.segs.front_mut() {
            // A gap (the stream was off meanwhile) is skipped.
            self.written = self.written.max(seg.start);
            while seg.inserts.front().is_some_and(|(at, _)| *at <= self.written) {
                let (_, bytes) = seg.inserts.pop_front().unwrap();
                out.extend_from_slice(&bytes);
                // It selected a db of its own.
                db.db = None;
            }
            if self.written >= seg.end() && seg.inserts.is_empty() {
                self.segs.pop_front();
                if self.written >= to {
                    return;
                }
                continue;
            }
            if self.written >= to {
                return;
            }
            let limit = seg.inserts.front().map_or(to, |(at, _)| to.min(*at));
            let end = seg.start + ((limit - seg.start) as usize).min(seg.bytes.len()) as u64;
            // The SELECTs and annotations in the range: one the output has
            // already is left out (see the module).
            while let Some(&(at, mark)) = seg.marks.front() {
                if at < self.written {
                    // Written in part by an earlier call (so written whole):
                    // a db not counted on, a second annotated.
                    seg.marks.pop_front();
                    match mark {
                        Mark::Select(_) => db.db = None,
                        Mark::Stamp(secs) => db.stamp = db.stamp.max(Some(secs)),
                    }
                    continue;
                }
                let len = mark.written_len() as u64;
                if at + len > end {
                    break;
                }
                seg.marks.pop_front();
                out.extend_from_slice(&seg.bytes[(self.written - seg.start) as usize..(at - seg.start) as usize]);
                let keep = match mark {
                    Mark::Select(d) => db.db.replace(d) != Some(d),
                    Mark::Stamp(secs) => {
                        let later = db.stamp < Some(secs);
                        db.stamp = db.stamp.max(Some(secs));
                        later
                    }
                };
                if keep {
                    out.extend_from_slice(&seg.bytes[(at - seg.start) as usize..(at + len - seg.start) as usize]);
                } else {
                    db.left_out += len;
                }
                self.written = at + len;
            }
            out.extend_from_slice(&seg.bytes[(self.written - seg.start) as usize..(end - seg.start) as usize]);
            self.written = end;
        }
    }
}

/// The cut with the lowest id at the front of some lane, if every lane of
/// it has written up to it.
fn ready_cut(lanes: &[Lane]) -> Option<Cut> {
    lanes
        .iter()
        .filter_map(|l| l.cuts.front().filter(|c| l.written == c.at))
        .filter(|c| (0..lanes.len()).filter(|&s| c.shards.contains(s)).all(|s| lanes[s].cuts.front().is_some_and(|f| f.id == c.id && lanes[s].written == f.at)))
        .min_by_key(|c| c.id)
        .cloned()
}

/// Writes cut `cut`'s unit (in its carrier's lane) and passes the cut in
/// every lane of it.
fn write_unit(lanes: &mut [Lane], cut: &Cut, out: &mut Vec<u8>, db: &mut Selected) {
    let carrier = &mut lanes[cut.carrier];
    let end = carrier.cuts.front().map_or(cut.at, |c| c.end);
    carrier.write_to(end, out, db);
    for (s, lane) in lanes.iter_mut().enumerate() {
        if cut.shards.contains(s) {
            lane.cuts.pop_front();
        }
    }
}

/// Moves, out of key order (a *jump*: see the module), every lane that
/// cut `c` waits for up to the cut it must pass first: the lanes of `c` up
/// to `c`, and when one of them has another cut ahead of `c`, the lanes of
/// that one up to it, and so on. False when none moved (the batch with
/// some cut of them is still to come).
fn jump_towards(lanes: &mut [Lane], c: Cut, out: &mut Vec<u8>, db: &mut Selected) -> bool {
    let mut moved = false;
    let mut todo = vec![c];
    let mut seen: Vec<u64> = Vec::new();
    while let Some(c) = todo.pop() {
        if seen.contains(&c.id) {
            continue;
        }
        seen.push(c.id);
        for s in (0..lanes.len()).filter(|&s| c.shards.contains(s)) {
            let lane = &mut lanes[s];
            let Some(front) = lane.cuts.front() else { continue };
            if front.id != c.id {
                // It passes its own next cut first.
                todo.push(front.clone());
                continue;
            }
            let to = front.at.min(lane.available());
            if lane.written < to {
                lane.write_to(to, out, db);
                moved = true;
            }
        }
    }
    moved
}

/// Merges the lanes' bytes into `out`, in causal order, as far as the cuts
/// allow (see the module); `db`: the db `out` (with what was written
/// before it) has selected, kept up to date.
pub(crate) fn merge(lanes: &mut [Lane], out: &mut Vec<u8>, db: &mut Selected) {
    loop {
        if let Some(cut) = ready_cut(lanes) {
            write_unit(lanes, &cut, out, db);
            continue;
        }
        let next = (0..lanes.len()).filter(|&s| lanes[s].head_key().is_some()).min_by_key(|&s| lanes[s].head_key());
        let Some(s) = next else { return };
        if !lanes[s].at_cut() {
            lanes[s].write_batch(out, db);
            continue;
        }
        let waited = lanes[s].cuts.front().cloned();
        if !waited.is_some_and(|c| jump_towards(lanes, c, out, db)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::hold::ShardMask;

    fn mask(shards: &[usize]) -> ShardMask {
        let mut m = ShardMask::default();
        for &s in shards {
            m.insert(s);
        }
        m
    }

    fn both() -> ShardMask {
        mask(&[0, 1])
    }

    fn lane(seq: u64, bytes: &[u8], cuts: Vec<Cut>) -> Lane {
        let mut l = Lane::default();
        l.ingest(seq, 0, bytes.to_vec(), cuts, Vec::new(), Vec::new());
        l
    }

    /// Shard 0 carries a unit `U` at its cut 5; shard 1 has its cut at 3:
    /// shard 1's bytes after its cut wait for the unit, shard 0's bytes
    /// before it go first.
    #[test]
    fn merge_waits_at_cuts_and_writes_the_unit_once() {
        let c = |at, end| Cut { id: 7, at, shards: both(), carrier: 0, end };
        let mut lanes = vec![lane(1, b"aaaaaUUbb", vec![c(5, 7)]), lane(2, b"xxxyy", vec![c(3, 3)])];
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut Selected::default());
        assert_eq!(out, b"aaaaaxxxUUbbyy");
        // A cut whose other shard has not handed its bytes over yet waits.
        let mut lanes = vec![lane(1, b"aUb", vec![c(1, 2)]), Lane::default()];
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut Selected::default());
        assert_eq!(out, b"a");
        lanes[1].ingest(2, 0, b"x".to_vec(), vec![c(1, 1)], Vec::new(), Vec::new());
        merge(&mut lanes, &mut out, &mut Selected::default());
        assert_eq!(out, b"axUb");
    }

    /// Batches of different shards go out in hand-over order, whatever the
    /// shards' numbers (the old merge wrote lane 0 first, then lane 1: a
    /// write of shard 1 whose reply came first could follow a later write
    /// of shard 0).
    #[test]
    fn batches_go_out_in_hand_over_order() {
        let mut lanes: Vec<Lane> = (0..3).map(|_| Lane::default()).collect();
        lanes[2].ingest(1, 0, b"a1".to_vec(), Vec::new(), Vec::new(), Vec::new());
        lanes[0].ingest(2, 0, b"b1".to_vec(), Vec::new(), Vec::new(), Vec::new());
        lanes[2].ingest(3, 2, b"a2".to_vec(), Vec::new(), Vec::new(), Vec::new());
        lanes[1].ingest(4, 0, b"c1".to_vec(), Vec::new(), vec![(0, b"P".to_vec())], Vec::new());
        lanes[0].ingest(5, 2, b"b2".to_vec(), Vec::new(), Vec::new(), Vec::new());
        lanes[1].ingest(6, 2, Vec::new(), Vec::new(), vec![(2, b"Q".to_vec())], Vec::new());
        lanes[2].ingest(7, 4, b"a3".to_vec(), Vec::new(), Vec::new(), Vec::new());
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut Selected::default());
        assert_eq!(out, b"a1b1a2Pc1b2Qa3");
        assert_eq!(merged_through(&mut lanes, 7), 7);
    }

    /// A lane waiting at a cut holds back every later batch (one of them
    /// may have been sent after a reply of its bytes past the cut), while
    /// the lanes of the cut jump to it; key order resumes after the unit.
    #[test]
    fn a_waiting_cut_holds_later_batches_back() {
        let mut lanes: Vec<Lane> = (0..3).map(|_| Lane::default()).collect();
        let c = |at, end| Cut { id: 9, at, shards: both(), carrier: 0, end };
        // Shard 1 (parked at the cut) handed over first: "x" before the
        // cut, "y" after; shard 2 then wrote "z" (maybe after "y"'s reply).
        lanes[1].ingest(1, 0, b"xy".to_vec(), vec![c(1, 1)], Vec::new(), Vec::new());
        lanes[2].ingest(2, 0, b"z".to_vec(), Vec::new(), Vec::new(), Vec::new());
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut Selected::default());
        assert_eq!(out, b"x");
        // The carrier's batch: "a" before the cut, the unit "U", "b" after.
        lanes[0].ingest(3, 0, b"aUb".to_vec(), vec![c(1, 2)], Vec::new(), Vec::new());
        merge(&mut lanes, &mut out, &mut Selected::default());
        assert_eq!(out, b"xaUyzb");
        assert_eq!(merged_through(&mut lanes, 3), 3);
    }

    /// Every shard's stream annotates each second (`#TS:`): the merge
    /// keeps the first annotation of a second and leaves out those of the
    /// same or an earlier second, whatever lane they come in; a SELECT
    /// after a dropped annotation is still judged on its own.
    #[test]
    fn one_annotation_per_second() {
        let ts = |secs: i64| format!("#TS:{secs}\r\n");
        let sel = |db: usize| {
            let mut v = Vec::new();
            crate::persistence::aof::append::append_select(&mut v, db);
            String::from_utf8(v).unwrap()
        };
        // A batch: an annotation, a SELECT of db 0, then a command `c`.
        let batch = |secs: i64, c: &str| (format!("{}{}{c}", ts(secs), sel(0)), vec![(0, Mark::Stamp(secs)), (ts(secs).len() as u64, Mark::Select(0))]);
        let mut lanes: Vec<Lane> = (0..3).map(|_| Lane::default()).collect();
        let mut pos = [0u64; 3];
        let mut out = Vec::new();
        let mut sel_state = Selected::default();
        for (seq, (shard, secs, c)) in [(0, 5, "a"), (1, 5, "b"), (1, 6, "c"), (0, 6, "d"), (2, 5, "e"), (2, 7, "f")].into_iter().enumerate() {
            let (bytes, marks) = batch(secs, c);
            let marks = marks.into_iter().map(|(at, m)| (pos[shard] + at, m)).collect();
            lanes[shard].ingest(seq as u64 + 1, pos[shard], bytes.clone().into_bytes(), Vec::new(), Vec::new(), marks);
            pos[shard] += bytes.len() as u64;
            merge(&mut lanes, &mut out, &mut sel_state);
        }
        // The SELECTs after the first are of the db selected already.
        assert_eq!(String::from_utf8(out).unwrap(), format!("{}{}ab{}cde{}f", ts(5), sel(0), ts(6), ts(7)));
        let left_out = 5 * sel(0).len() + 3 * ts(5).len();
        assert_eq!(sel_state, Selected { db: Some(0), stamp: Some(7), left_out: left_out as u64 });
    }

    /// Hop cut ids are drawn before their intents are numbered, so two
    /// lanes may meet two hops' cuts in opposite id order: a lane waiting
    /// at one has the lanes it needs jump to the cut each must pass first.
    #[test]
    fn cuts_out_of_id_order_still_complete() {
        // Lane 0 runs hop 11's part before hop 10's; lane 2 carries 11
        // ("U"), lane 1 carries 10 ("V").
        let c11 = |at, end| Cut { id: 11, at, shards: mask(&[0, 2]), carrier: 2, end };
        let c10 = |at, end| Cut { id: 10, at, shards: mask(&[0, 1]), carrier: 1, end };
        let mut lanes: Vec<Lane> = (0..3).map(|_| Lane::default()).collect();
        lanes[1].ingest(1, 0, b"pVq".to_vec(), vec![c10(1, 2)], Vec::new(), Vec::new());
        lanes[0].ingest(2, 0, b"abc".to_vec(), vec![c11(1, 1), c10(2, 2)], Vec::new(), Vec::new());
        lanes[2].ingest(3, 0, b"xUy".to_vec(), vec![c11(1, 2)], Vec::new(), Vec::new());
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut Selected::default());
        assert_eq!(out, b"paxUbVqcy");
    }
}
