//! Propagation: the replay form of every successful write, appended to one
//! ordered write stream per shard (Redis's `propagateNow` /
//! `feedAppendOnlyFile`), for the AOF (and later replication) to consume.
//!
//! What is appended follows Redis 7.0: the command's arguments as the client
//! sent them when it changed something (the dirty counter moved), or the
//! form its handler chose (`Ctx::propagate_as`: SET ... PXAT for EX/PX/EXAT,
//! PEXPIREAT for the EXPIRE family and GETEX, PERSIST, SET ... KEEPTTL for
//! INCRBYFLOAT, DEL for GETDEL and for a time already past). Keys a command
//! found expired (lazy expiry, `ShardState::expired`) are `DEL`s appended
//! before the command; when a command leaves more than one operation they
//! are wrapped in MULTI/EXEC, as Redis 7.0's `propagatePendingCommands`
//! does. Keys deleted by active expiry are `DEL`s appended at once.
//!
//! **Position.** A stream's position is the number of bytes ever appended
//! to it; the consumer takes the bytes out (`Stream::take`) and never moves
//! it back. Every batch taken starts with a SELECT, so batches of different
//! shards can be interleaved in one file in any order that respects the cuts.
//!
//! **Cuts: a held multi-shard command.** While a command holds several
//! shards (MSET, DEL over shards, FLUSHALL, SWAPDB...), every one of them is
//! parked, so their positions at that moment form one consistent cut. The
//! coordinator records a `Cut` (one id from a global counter, the same in
//! each) in the stream of every shard it holds, at that shard's position
//! after the command ran, and appends the command's whole unit (expired-key
//! DELs of every held shard, then the command, MULTI/EXEC around them when
//! more than one) to the stream of the lowest held shard, the *carrier*,
//! right at its cut. The consumer's rule: the bytes of a stream past one of
//! its cuts are written only after every shard of that cut has been written
//! up to its own cut position (then the carrier's unit goes first). Per-key
//! order is thus execution order: a key's earlier writes lie before the cut
//! in its own shard's stream, its later ones after. The cuts of held
//! commands are in increasing id order in every stream (ids are drawn
//! while every held shard is parked); with hops' cuts among them, every
//! stream meets the cuts in the order of the hold sequence (below), so
//! the consumer never waits in a cycle.
//! The fork of BGSAVE/BGREWRITEAOF takes the same hold of every shard, so
//! `Stream::position` of each at the fork is the cut of the snapshot.
//!
//! **Cuts: a hop.** A multi-shard write run by hops (`network::hop`: MSET,
//! DEL, UNLINK, an EXEC of single-shard commands) parks nobody: each shard
//! runs its part on its own thread when the hop's intent heads its queue.
//! Its coordinator draws a cut id when it splits the command and joins the
//! intent itself (an empty part when it has no key): it is the *carrier*.
//! Each other part, when it runs, records the cut at its stream's position
//! right then (`hop_cut`) and sends back what it left (expired-key DELs;
//! an EXEC part's commands' forms and how many per command). The
//! carrier's part runs last, once every other part is back: it records its
//! cut and appends the hop's whole unit right at it (`hop_unit`: the DELs,
//! then the command as sent when some part changed something; for EXEC
//! each command's operations in queue order; MULTI/EXEC around more than
//! one), which is where Redis would write it. The consumer's rule above is
//! unchanged, and these positions are a consistent cut for it:
//! - *Per key.* A part runs while its keys are marked (`HoldTable::mark`),
//!   and every single-shard command on a marked key waits for the part, so
//!   a key's writes before the hop are before the cut in its shard's
//!   stream and its writes after the hop after it. (A shard's other keys
//!   may be written between the hop's parts on different shards: they are
//!   not the hop's, and each lies on its own side of its own shard's cut,
//!   in that shard's execution order.)
//! - *Between multi-shard operations.* A part records its cut only while
//!   its intent heads its shard's queue, and a hold records its cuts while
//!   its intents head every queue: every stream's cuts are therefore in
//!   the order of the global sequence, the same order in every stream, so
//!   the consumer never waits in a cycle. (The carrier keeps its intent at
//!   the head of its queue until its part ran, so nothing numbered later
//!   cuts its stream before it does.)
//! - Streams are turned on and off only under a hold of every shard, so
//!   all parts of a hop find them in the same state; a hop split while
//!   they were off and run after they came on (a CONFIG SET appendonly yes
//!   queued before it) has no cut: each part then propagates its own part
//!   in its own stream (per-key order holds, the one unit does not).
//!
//! A hop that changed nothing leaves a cut with an empty unit (its parts
//! could not know); the writer publishes such batches as synced at once.
//!
//! **Order across shards.** The consumers (the AOF writer, the replication
//! feeder) merge the streams in causal order, not only per key: a write
//! whose reply a client saw comes before every write that client sent
//! afterwards, whatever the shards (`persistence::lanes`: batches in
//! hand-over order, which is causal because a shard hands a batch over
//! before any reply of its writes leaves; the hop window it leaves is
//! described there). Whoever adds a path that sends a reply must hand the
//! stream over first (`Sink::hand_over`) when it is on.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::persistence::aof::append::{AppendState, Mark};
use crate::shard::hold::ShardMask;

/// One cut recorded in a shard's stream (see the module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Global order of cuts.
    pub id: u64,
    /// This stream's position at the cut.
    pub at: u64,
    /// The shards held by the command.
    pub shards: ShardMask,
    /// The shard whose stream carries the command's unit, at its cut.
    pub carrier: usize,
    /// Where the unit ends in the carrier's stream (`at` elsewhere).
    pub end: u64,
}

static NEXT_CUT: AtomicU64 = AtomicU64::new(1);

/// Where a batch SELECTs or annotates a second: (stream position, mark)
/// of each, in order (see `Stream::marks`).
pub type Marks = Vec<(u64, Mark)>;

/// A shard's write stream.
#[derive(Default)]
pub struct Stream {
    /// Whether some consumer (the AOF, replication) is on: when off nothing
    /// is appended and the only cost a command pays is this check.
    on: bool,
    /// The consumers: the AOF (`set_on`) and replication (`set_repl`).
    aof: bool,
    repl: bool,
    buf: Vec<u8>,
    /// Bytes taken by the consumer before `buf`.
    taken: u64,
    state: AppendState,
    /// Keys found expired during the command running now, in order, as (db, key).
    pending: Vec<(usize, Box<[u8]>)>,
    cuts: Vec<Cut>,
    /// aof-timestamp-enabled: a `#TS:<unix seconds>` annotation goes
    /// before a command when the second changed since the last one of this
    /// stream (Redis's genAofTimestampAnnotationIfNeeded). Streams of
    /// different shards annotate apart; the merge keeps one annotation per
    /// second (see `marks`).
    timestamps: bool,
    /// The operations of the EXEC running now (`after_command` with
    /// `Ctx::in_multi`), appended as one unit when it ends (`exec_end`).
    exec_ops: Vec<(usize, Vec<Vec<u8>>)>,
    /// Commands for replication alone (PUBLISH, Redis's
    /// `forceCommandPropagation(c, PROPAGATE_REPL)`), each with the stream
    /// position it goes at: the AOF never sees them.
    inserts: Vec<(u64, Vec<u8>)>,
    /// Every SELECT and `#TS:` annotation appended since the last take, as
    /// (stream position, mark), taken with the batch: a stream selects its
    /// db again after each take and each cut (the consumer may switch
    /// streams there), and every shard's stream annotates each second; the
    /// merge (`persistence::lanes`) leaves out the SELECTs of a db the
    /// merged output has selected already and the annotations of a second
    /// it has annotated already, so that the AOF holds a SELECT only where
    /// the db changes and one annotation per second, as Redis's
    /// `feedAppendOnlyFile` writes them.
    marks: Marks,
}

impl Stream {
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Starts or stops appending for the AOF (while the shard is held or
    /// owned).
    pub fn set_on(&mut self, on: bool) {
        self.aof = on;
        self.apply_consumers();
    }

    /// Starts or stops appending for replication (`replication`).
    pub fn set_repl(&mut self, on: bool) {
        self.repl = on;
        self.apply_consumers();
    }

    /// Whether the AOF consumes this stream.
    #[inline]
    pub fn feeds_aof(&self) -> bool {
        self.aof
    }

    /// Whether replication consumes this stream.
    #[inline]
    pub fn feeds_repl(&self) -> bool {
        self.repl
    }

    fn apply_consumers(&mut self) {
        let on = self.aof || self.repl;
        self.on = on;
        if !on {
            self.buf = Vec::new();
            self.inserts.clear();
            self.pending.clear();
            self.cuts.clear();
            self.marks.clear();
        }
        self.state.reset_db();
    }

    /// The number of bytes ever appended.
    #[inline]
    pub fn position(&self) -> u64 {
        self.taken + self.buf.len() as u64
    }

    /// Turns `#TS:` annotations on or off (aof-timestamp-enabled).
    pub fn set_timestamps(&mut self, on: bool) {
        self.timestamps = on;
    }

    /// Appends `argv` as run in `db`.
    pub fn feed<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        let now_secs = self.timestamps.then(|| crate::util::unix_ms() / 1000);
        let (taken, marks) = (self.taken, &mut self.marks);
        self.state.feed_marked(&mut self.buf, db, argv, now_secs, |at, mark| marks.push((taken + at as u64, mark)));
    }

    /// Appends `argv` in whatever db is selected (MULTI's EXEC).
    fn feed_here<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        crate::persistence::aof::append::append_command(&mut self.buf, argv);
    }

    /// A key found expired by a lookup: its DEL goes out with the command.
    pub fn expired(&mut self, db: usize, key: &[u8]) {
        if self.on {
            self.pending.push((db, key.into()));
        }
    }

    /// A key deleted by active expiry: its DEL goes out at once.
    pub fn expired_now(&mut self, db: usize, key: &[u8]) {
        if self.on {
            self.flush_pending();
            self.feed(db, &[&b"DEL"[..], key]);
        }
    }

    /// DELs of keys found expired outside a command (they stand alone).
    pub fn flush_pending(&mut self) {
        for (db, key) in std::mem::take(&mut self.pending) {
            self.feed(db, &[&b"DEL"[..], &key[..]]);
        }
    }

    fn take_pending(&mut self) -> Vec<(usize, Box<[u8]>)> {
        std::mem::take(&mut self.pending)
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the bytes appended since the last take, with their first
    /// position, the cuts recorded among them and where they SELECT or
    /// annotate (see `marks`). The next batch starts with a SELECT.
    pub fn take(&mut self) -> (u64, Vec<u8>, Vec<Cut>, Marks) {
        let start = self.taken;
        let bytes = std::mem::take(&mut self.buf);
        self.taken += bytes.len() as u64;
        self.state.reset_db();
        (start, bytes, std::mem::take(&mut self.cuts), std::mem::take(&mut self.marks))
    }

    /// Nothing to take.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.cuts.is_empty() && self.inserts.is_empty()
    }

    /// A command for replication alone, run in `db`, at this point of the
    /// stream (nothing when replication does not consume it).
    pub fn repl_insert<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        if !self.repl {
            return;
        }
        let mut bytes = Vec::new();
        let index = itoa::Buffer::new().format(db).to_string();
        crate::persistence::aof::append::append_command(&mut bytes, &[&b"SELECT"[..], index.as_bytes()]);
        crate::persistence::aof::append::append_command(&mut bytes, argv);
        self.inserts.push((self.position(), bytes));
        // It selected its db in the replication stream: the next command
        // of this stream selects its own.
        self.state.reset_db();
    }

    /// Takes the replication-only commands (with `take`'s batch).
    pub fn take_inserts(&mut self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut self.inserts)
    }

    /// The bytes not taken yet (tests, DEBUG).
    pub fn pending_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// What a write's handler asks to propagate instead of its arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Propagate {
    /// The arguments as sent, when the command changed something.
    #[default]
    Args,
    /// The arguments as sent, even when nothing changed (FLUSHALL and
    /// FLUSHDB of empty databases: Redis's `forceCommandPropagation`).
    Force,
    /// This form instead (Redis's `rewriteClientCommandVector`).
    As(Vec<Vec<u8>>),
    /// These commands instead, in order (Redis's `alsoPropagate` after
    /// `preventCommandPropagation`: SPOP with a count as one SREM per
    /// member); wrapped in MULTI/EXEC when more than one, none when empty.
    Many(Vec<Vec<Vec<u8>>>),
    /// The arguments as sent, to replication alone (PUBLISH: Redis's
    /// `forceCommandPropagation(c, PROPAGATE_REPL)`). Inside EXEC it goes
    /// at once, before the transaction's unit, not inside its MULTI/EXEC.
    ReplOnly,
}

/// The operations of one command, appended as one unit to `stream`:
/// expired-key DELs, then the command's own (none, one, or several), wrapped
/// in MULTI/EXEC when more than one.
fn append_unit(stream: &mut Stream, dels: &[(usize, Box<[u8]>)], cmds: &[(usize, &[&[u8]])]) {
    let ops = dels.len() + cmds.len();
    if ops == 0 {
        return;
    }
    if ops > 1 {
        // MULTI goes in the db of the first operation, so that its SELECT
        // comes before it, as Redis does.
        let first = dels.first().map(|d| d.0).or(cmds.first().map(|c| c.0)).unwrap_or(0);
        stream.feed(first, &[&b"MULTI"[..]]);
    }
    for (db, key) in dels {
        stream.feed(*db, &[&b"DEL"[..], &key[..]]);
    }
    for &(db, argv) in cmds {
        stream.feed(db, argv);
    }
    if ops > 1 {
        stream.feed_here(&[&b"EXEC"[..]]);
    }
}

/// Called by `call()` after the handler when the home shard's stream is on:
/// `dirty_before` is the sum of the dirty counters of the held shards
/// before the handler ran.
pub fn after_command(ctx: &mut crate::commands::Ctx, args: &[&[u8]], dirty_before: u64) {
    if ctx.propagate == Propagate::ReplOnly {
        ctx.propagate = Propagate::Args;
        let db = ctx.db;
        ctx.shards.get_mut(ctx.home).stream.repl_insert(db, args);
    }
    if ctx.in_multi {
        return collect_for_exec(ctx, args, dirty_before);
    }
    let held: Vec<usize> = (0..ctx.shard_count).filter(|&i| ctx.shards.has(i)).collect();
    let dirty_after: u64 = held.iter().map(|&i| ctx.shards.get(i).dirty).sum();
    let propagate = std::mem::take(&mut ctx.propagate);
    let db = ctx.db;
    let rewritten: Vec<&[u8]>;
    let single: Option<&[&[u8]]> = match &propagate {
        Propagate::As(v) => {
            rewritten = v.iter().map(|a| &a[..]).collect();
            Some(&rewritten)
        }
        Propagate::Force => Some(args),
        Propagate::Args => (dirty_after != dirty_before).then_some(args),
        Propagate::Many(_) | Propagate::ReplOnly => None,
    };
    // The common case (one command or none) allocates nothing more.
    let many: Vec<Vec<&[u8]>> = match &propagate {
        Propagate::Many(v) => v.iter().map(|argv| argv.iter().map(|a| &a[..]).collect()).collect(),
        _ => Vec::new(),
    };
    if held.len() == 1 {
        let s = &mut ctx.shards.get_mut(held[0]).stream;
        if !s.has_pending() && many.is_empty() {
            if let Some(argv) = single {
                s.feed(db, argv);
            }
            return;
        }
    }
    let cmds: Vec<(usize, &[&[u8]])> = single.into_iter().chain(many.iter().map(|v| &v[..])).map(|c| (db, c)).collect();
    emit_unit(ctx, &held, &cmds);
}

/// A command run by EXEC (`Ctx::in_multi`): the expired-key DELs it left
/// and what it propagates are kept, in order, in the home shard's stream
/// until the EXEC ends (`exec_end`), so that the transaction's writes are
/// one unit, in MULTI/EXEC when more than one, as Redis 7.0's
/// `propagatePendingCommands` after `execCommand`.
fn collect_for_exec(ctx: &mut crate::commands::Ctx, args: &[&[u8]], dirty_before: u64) {
    let held: Vec<usize> = (0..ctx.shard_count).filter(|&i| ctx.shards.has(i)).collect();
    let dirty_after: u64 = held.iter().map(|&i| ctx.shards.get(i).dirty).sum();
    let propagate = std::mem::take(&mut ctx.propagate);
    let db = ctx.db;
    let mut ops: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    for &i in &held {
        for (del_db, key) in ctx.shards.get_mut(i).stream.take_pending() {
            ops.push((del_db, vec![b"DEL".to_vec(), key.into_vec()]));
        }
    }
    match propagate {
        Propagate::As(v) => ops.push((db, v)),
        Propagate::Force => ops.push((db, args.iter().map(|a| a.to_vec()).collect())),
        Propagate::Args if dirty_after != dirty_before => ops.push((db, args.iter().map(|a| a.to_vec()).collect())),
        Propagate::Args | Propagate::ReplOnly => {}
        Propagate::Many(v) => ops.extend(v.into_iter().map(|argv| (db, argv))),
    }
    ctx.shards.get_mut(ctx.home).stream.exec_ops.extend(ops);
}

/// How many operations the running EXEC or script has collected so far.
pub fn exec_ops_len(ctx: &crate::commands::Ctx) -> usize {
    ctx.shards.get(ctx.home).stream.exec_ops.len()
}

/// Drops what was collected after `len` operations (a script's command
/// run under `redis.set_repl(redis.REPL_NONE)`).
pub fn exec_ops_truncate(ctx: &mut crate::commands::Ctx, len: usize) {
    ctx.shards.get_mut(ctx.home).stream.exec_ops.truncate(len);
}

/// The end of an EXEC: what its commands propagated (`collect_for_exec`)
/// is appended as one unit, over the shards it held (at one cut when
/// several).
pub fn exec_end(ctx: &mut crate::commands::Ctx) {
    let ops = std::mem::take(&mut ctx.shards.get_mut(ctx.home).stream.exec_ops);
    if ops.is_empty() {
        return;
    }
    let held: Vec<usize> = (0..ctx.shard_count).filter(|&i| ctx.shards.has(i)).collect();
    let argvs: Vec<Vec<&[u8]>> = ops.iter().map(|(_, argv)| argv.iter().map(|a| &a[..]).collect()).collect();
    let cmds: Vec<(usize, &[&[u8]])> = ops.iter().zip(&argvs).map(|((db, _), argv)| (*db, &argv[..])).collect();
    emit_unit(ctx, &held, &cmds);
}

/// Appends one unit (the held shards' pending expired-key DELs, then
/// `cmds`) to the stream of the only held shard, or at a cut of all of
/// them.
fn emit_unit(ctx: &mut crate::commands::Ctx, held: &[usize], cmds: &[(usize, &[&[u8]])]) {
    if held.len() == 1 {
        let s = &mut ctx.shards.get_mut(held[0]).stream;
        let dels = s.take_pending();
        append_unit(s, &dels, cmds);
        return;
    }
    let mut dels = Vec::new();
    for &i in held {
        dels.extend(ctx.shards.get_mut(i).stream.take_pending());
    }
    if dels.is_empty() && cmds.is_empty() {
        return;
    }
    let id = NEXT_CUT.fetch_add(1, Ordering::Relaxed);
    let mut shards = ShardMask::default();
    for &i in held {
        shards.insert(i);
    }
    let carrier = held[0];
    for &i in held {
        let s = &mut ctx.shards.get_mut(i).stream;
        let at = s.position();
        s.cuts.push(Cut { id, at, shards, carrier, end: at });
        // The consumer may switch streams at a cut: what follows it starts
        // with its own SELECT.
        s.state.reset_db();
    }
    let s = &mut ctx.shards.get_mut(carrier).stream;
    append_unit(s, &dels, cmds);
    s.state.reset_db();
    let end = s.position();
    if let Some(c) = s.cuts.last_mut() {
        c.end = end;
    }
    // The held shards' bytes are handed over now, numbered before this
    // shard's own next hand-over: a reply waiting for that one (appendfsync
    // always) waits for them too. (Only to a running writer: without one
    // the bytes stay in the streams for whoever takes them.)
    let to_consumers = ctx.server.aof.is_running() || ctx.shards.get(carrier).stream.feeds_repl();
    for &i in held.iter().filter(|_| to_consumers) {
        if i != ctx.home {
            ctx.server.aof.hand_over(ctx.shards.get_mut(i));
        }
    }
}

/// Operations of a hop's part (`network::hop`), each with its db, in the
/// order they ran: expired-key DELs and, for an EXEC part, what its
/// commands propagated.
pub type Ops = Vec<(usize, Vec<Vec<u8>>)>;

/// A number for a hop's cut, the same in the stream of each of its shards.
pub fn next_cut_id() -> u64 {
    NEXT_CUT.fetch_add(1, Ordering::Relaxed)
}

/// The keys a hop part found expired, as DEL operations, in order.
pub fn take_pending_ops(stream: &mut Stream) -> Ops {
    stream.take_pending().into_iter().map(|(db, key)| (db, vec![b"DEL".to_vec(), key.into_vec()])).collect()
}

/// What the commands of an EXEC part collected (`collect_for_exec`): they
/// go to the carrier's unit, not to this stream.
pub fn take_exec_ops(stream: &mut Stream) -> Ops {
    std::mem::take(&mut stream.exec_ops)
}

/// How many operations the commands of an EXEC part collected so far.
pub fn exec_ops_count(stream: &Stream) -> usize {
    stream.exec_ops.len()
}

/// A non-carrier part of hop `id` over `shards` ran: its cut, at this
/// stream's position now (see "Cuts: a hop" in the module doc).
pub fn hop_cut(stream: &mut Stream, id: u64, shards: ShardMask, carrier: usize) {
    let at = stream.position();
    stream.cuts.push(Cut { id, at, shards, carrier, end: at });
    stream.state.reset_db();
}

/// The carrier's part of hop `id` ran, after every other part: its cut
/// here, and the hop's whole unit (`ops`, in MULTI/EXEC when more than
/// one) right at it.
pub fn hop_unit(stream: &mut Stream, id: u64, shards: ShardMask, carrier: usize, ops: &Ops) {
    hop_cut(stream, id, shards, carrier);
    let argvs: Vec<Vec<&[u8]>> = ops.iter().map(|(_, argv)| argv.iter().map(|a| &a[..]).collect()).collect();
    let cmds: Vec<(usize, &[&[u8]])> = ops.iter().zip(&argvs).map(|((db, _), argv)| (*db, &argv[..])).collect();
    append_unit(stream, &[], &cmds);
    stream.state.reset_db();
    let end = stream.position();
    if let Some(c) = stream.cuts.last_mut() {
        c.end = end;
    }
}

#[cfg(test)]
mod tests {
    use crate::commands::{CommandTable, Ctx};
    use crate::protocol::Reply;
    use crate::server::Server;
    use crate::shard::hold::ShardSet;
    use crate::shard::ShardState;

    const NOW: i64 = 1_700_000_000_000;

    struct Harness {
        server: Server,
        shards: Vec<ShardState>,
        clock: super::super::Clock,
    }

    impl Harness {
        fn new(n: usize) -> Harness {
            // No save points: FLUSHALL would save a dump in the working directory.
            let config = crate::config::Config { save: Vec::new(), ..Default::default() };
            let mut shards: Vec<ShardState> = (0..n).map(|i| ShardState::new(i, n, config.clone())).collect();
            for s in &mut shards {
                s.stream.set_on(true);
            }
            Harness { server: Server::new(n, 100, 0), shards, clock: super::super::Clock::new() }
        }

        /// Runs `cmd` in `db` at `NOW` + `dt` ms, holding every shard
        /// (`home` 0) when `held`, else on the shard of its first key.
        fn run(&mut self, db: usize, held: bool, dt: i64, cmd: &[&str]) -> Vec<u8> {
            let n = self.shards.len();
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            let home = if held || args.len() < 2 { 0 } else { crate::shard::slot::key_shard(args[1], n) };
            let mut set = ShardSet::new(n);
            for (i, s) in self.shards.iter_mut().enumerate() {
                if held || i == home {
                    // SAFETY: the shard lives in `self.shards`, which is not
                    // resized, for the whole call, and nothing else touches
                    // it meanwhile.
                    unsafe { set.set(i, s as *mut ShardState) };
                }
            }
            let table = CommandTable::get();
            let id = table.lookup(args[0]).unwrap();
            let mut out = Vec::new();
            let mut r = Reply::new(&mut out, 2);
            let mut ctx = Ctx::new(&mut set, &self.server, home, db, 2, NOW + dt, None);
            super::super::call(&mut ctx, &mut self.clock, id, &args, &mut r, &crate::exec::Caller::LOCAL, &mut Vec::new());
            out
        }

        /// What shard `i` streamed since the last take.
        fn take(&mut self, i: usize) -> Vec<u8> {
            self.shards[i].stream.take().1
        }

        /// Runs `cmds` as EXEC runs its queue: every shard held (`home`
        /// 0), each command with `in_multi`, then `exec_end`.
        fn exec(&mut self, db: usize, dt: i64, cmds: &[&[&str]]) {
            let n = self.shards.len();
            let mut set = ShardSet::new(n);
            for (i, s) in self.shards.iter_mut().enumerate() {
                // SAFETY: as in `run`.
                unsafe { set.set(i, s as *mut ShardState) };
            }
            let table = CommandTable::get();
            for cmd in cmds {
                let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
                let mut out = Vec::new();
                let mut r = Reply::new(&mut out, 2);
                let mut ctx = Ctx::new(&mut set, &self.server, 0, db, 2, NOW + dt, None);
                ctx.in_multi = true;
                super::super::call(&mut ctx, &mut self.clock, table.lookup(args[0]).unwrap(), &args, &mut r, &crate::exec::Caller::LOCAL, &mut Vec::new());
            }
            let mut ctx = Ctx::new(&mut set, &self.server, 0, db, 2, NOW + dt, None);
            super::exec_end(&mut ctx);
        }
    }

    /// An EXEC's writes over two shards are one MULTI/EXEC unit at one cut
    /// (reads and no-op writes leave nothing, a key found expired is a DEL
    /// in place); a lone write is not wrapped; an EXEC of reads leaves nothing.
    #[test]
    fn exec_is_one_unit() {
        let mut h = Harness::new(2);
        let (k0, k1) = (&key_of(0), &key_of(1));
        h.run(0, false, 0, &["set", k1, "old", "px", "5"]);
        h.take(0);
        h.take(1);
        h.exec(0, 10, &[&["set", k0, "a"], &["get", k0], &["del", "nokey"], &["incr", k1], &["select", "1"]]);
        let (_, b0, cuts0, _) = h.shards[0].stream.take();
        let (_, b1, cuts1, _) = h.shards[1].stream.take();
        assert_eq!(b0, resp(&[&["SELECT", "0"], &["MULTI"], &["set", k0, "a"], &["DEL", k1], &["incr", k1], &["EXEC"]]));
        assert!(b1.is_empty());
        assert_eq!((cuts0.len(), cuts1.len()), (1, 1));
        assert_eq!(cuts0[0].id, cuts1[0].id);
        h.exec(0, 10, &[&["set", k1, "b"], &["get", k0]]);
        assert_eq!(h.take(0), resp(&[&["SELECT", "0"], &["set", k1, "b"]]));
        h.exec(0, 10, &[&["get", k1], &["exists", k0]]);
        assert!(h.take(0).is_empty() && h.take(1).is_empty());
    }

    /// The first key `k<i>` of `shard` of two.
    fn key_of(shard: usize) -> String {
        (0..).map(|i| format!("k{i}")).find(|k| crate::shard::slot::key_shard(k.as_bytes(), 2) == shard).unwrap()
    }

    fn resp(cmds: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            crate::persistence::aof::append::append_command(&mut out, c);
        }
        out
    }

    /// The forms redis-server 7.0.15 appended to its incr file for these
    /// commands (appendonly yes, appendfsync always), times made absolute.
    #[test]
    fn replay_forms_are_redis_7_0s() {
        let mut h = Harness::new(1);
        let exp = (NOW + 100_000).to_string();
        let cases: &[(&[&str], &[&[&str]])] = &[
            (&["set", "a", "1"], &[&["SELECT", "0"], &["set", "a", "1"]]),
            (&["set", "b", "2", "ex", "100"], &[&["SET", "b", "2", "PXAT", &exp]]),
            (&["set", "c", "3", "px", "100000", "nx", "get"], &[&["SET", "c", "3", "PXAT", &exp]]),
            (&["set", "d", "4", "exat", "4000000000"], &[&["SET", "d", "4", "PXAT", "4000000000000"]]),
            (&["set", "e", "5", "pxat", "4000000000000"], &[&["SET", "e", "5", "PXAT", "4000000000000"]]),
            (&["setex", "f", "100", "v"], &[&["SET", "f", "v", "PXAT", &exp]]),
            (&["psetex", "g", "100000", "v"], &[&["SET", "g", "v", "PXAT", &exp]]),
            (&["getset", "a", "9"], &[&["SET", "a", "9"]]),
            (&["getdel", "b"], &[&["DEL", "b"]]),
            (&["getdel", "nokey"], &[]),
            (&["set", "h", "1"], &[&["set", "h", "1"]]),
            (&["getex", "h", "ex", "100"], &[&["PEXPIREAT", "h", &exp]]),
            (&["getex", "h", "persist"], &[&["PERSIST", "h"]]),
            (&["getex", "h", "persist"], &[]),
            (&["getex", "h"], &[]),
            (&["incrbyfloat", "h", "1.5"], &[&["SET", "h", "2.5", "KEEPTTL"]]),
            (&["incr", "i"], &[&["incr", "i"]]),
            (&["expire", "h", "100"], &[&["PEXPIREAT", "h", &exp]]),
            (&["pexpire", "h", "100000", "nx"], &[]),
            (&["pexpire", "h", "100000", "xx"], &[&["PEXPIREAT", "h", &exp, "xx"]]),
            (&["expireat", "h", "4000000000"], &[&["PEXPIREAT", "h", "4000000000000"]]),
            (&["pexpireat", "h", "4000000000000"], &[&["pexpireat", "h", "4000000000000"]]),
            (&["expire", "nokey", "10"], &[]),
            (&["persist", "h"], &[&["persist", "h"]]),
            (&["persist", "h"], &[]),
            (&["expire", "h", "-1"], &[&["DEL", "h"]]),
            (&["mset", "m1", "1", "m2", "2"], &[&["mset", "m1", "1", "m2", "2"]]),
            (&["del", "m1", "m2", "nokey"], &[&["del", "m1", "m2", "nokey"]]),
            (&["del", "nokey"], &[]),
            (&["setnx", "a", "1"], &[]),
            (&["msetnx", "a", "1", "q", "2"], &[]),
            (&["set", "s", "", "xx", "get"], &[]),
            (&["set", "k", "1", "keepttl"], &[&["set", "k", "1", "keepttl"]]),
            (&["getex", "k", "pxat", "1"], &[&["DEL", "k"]]),
            (&["flushdb"], &[&["flushdb"]]),
            (&["swapdb", "0", "1"], &[&["swapdb", "0", "1"]]),
            (&["flushall"], &[&["flushall"]]),
        ];
        for (cmd, expect) in cases {
            h.run(0, false, 0, cmd);
            assert_eq!(String::from_utf8(h.take(0)).unwrap(), String::from_utf8(resp(expect)).unwrap(), "{cmd:?}");
            // Every batch starts with a SELECT: put one in front of the
            // next expectation by selecting it here.
            h.shards[0].stream.state.feed(&mut Vec::new(), 0, &["x"], None);
        }
    }

    /// SPOP's forms as redis-server 7.0.15 appends them: SREM of the member
    /// taken; with a count, one SREM per member (MULTI/EXEC around more
    /// than one), or DEL when the whole set goes; a *STORE with an empty
    /// result and no destination to delete, nothing.
    #[test]
    fn spop_propagates_srems() {
        let mut h = Harness::new(1);
        h.run(0, false, 0, &["sadd", "s", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
        h.take(0);
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let srems = |t: &str| t.matches("$4\r\nSREM\r\n$1\r\ns\r\n").count();
        h.run(0, false, 0, &["spop", "s"]);
        let t = text(h.take(0));
        assert!(t.starts_with("*2\r\n$6\r\nSELECT") && srems(&t) == 1 && !t.contains("MULTI"), "{t}");
        h.run(0, false, 0, &["spop", "s", "1"]);
        let t = text(h.take(0));
        assert!(srems(&t) == 1 && !t.contains("MULTI"), "{t}");
        // Few of many: popped one by one; most: the remainder is rebuilt.
        for count in ["2", "5"] {
            h.run(0, false, 0, &["spop", "s", count]);
            let t = text(h.take(0));
            assert!(srems(&t) == count.parse::<usize>().unwrap() && t.contains("MULTI") && t.ends_with("*1\r\n$4\r\nEXEC\r\n"), "{t}");
        }
        h.run(0, false, 0, &["spop", "s", "0"]);
        assert_eq!(text(h.take(0)), "");
        h.run(0, false, 0, &["spop", "s", "5"]);
        assert_eq!(h.take(0), resp(&[&["SELECT", "0"], &["DEL", "s"]]));
        h.run(0, false, 0, &["sinterstore", "d", "s", "nokey"]);
        assert_eq!(text(h.take(0)), "");
        h.run(0, false, 0, &["sadd", "d", "1"]);
        h.take(0);
        h.run(0, false, 0, &["sinterstore", "d", "s", "nokey"]);
        assert_eq!(h.take(0), resp(&[&["SELECT", "0"], &["sinterstore", "d", "s", "nokey"]]));
        h.run(0, false, 0, &["smove", "a", "b", "1"]);
        assert_eq!(text(h.take(0)), "");
    }

    /// A key found expired inside a write: DEL then the write, in
    /// MULTI/EXEC; inside a read: a lone DEL (as redis-server 7.0.15).
    #[test]
    fn lazy_expiry_dels_come_first() {
        let mut h = Harness::new(1);
        h.run(2, false, 0, &["set", "y", "1", "px", "1"]);
        h.take(0);
        h.run(2, false, 10, &["set", "y", "2"]);
        assert_eq!(h.take(0), resp(&[&["SELECT", "2"], &["MULTI"], &["DEL", "y"], &["set", "y", "2"], &["EXEC"]]));
        h.run(2, false, 10, &["set", "x", "1", "px", "1"]);
        h.take(0);
        h.run(2, false, 20, &["get", "x"]);
        assert_eq!(h.take(0), resp(&[&["SELECT", "2"], &["DEL", "x"]]));
        // Active expiry: at once.
        h.run(3, false, 20, &["set", "z", "1", "px", "1"]);
        h.take(0);
        h.shards[0].active_expire_cycle(NOW + 30, 1000, |_| false);
        assert_eq!(h.take(0), resp(&[&["SELECT", "3"], &["DEL", "z"]]));
    }

    /// A hop over two shards: shard 1's part records its cut when it runs
    /// (between its writes of `k1` before and after the hop), the carrier
    /// (shard 0) appends the whole unit at its own cut later, after a write
    /// of another key; merged, the unit lies between `k1`'s two writes.
    #[test]
    fn hop_unit_lies_at_its_cut_in_every_stream() {
        use crate::persistence::aof_file::{merge, Lane};
        let mut h = Harness::new(2);
        let (k0, k1) = (&key_of(0), &key_of(1));
        let other = &(0..).map(|i| format!("o{i}")).find(|k| crate::shard::slot::key_shard(k.as_bytes(), 2) == 0).unwrap();
        let id = super::next_cut_id();
        let both = crate::shard::hold::ShardMask(0b11);
        h.run(0, false, 0, &["set", k1, "old"]);
        super::hop_cut(&mut h.shards[1].stream, id, both, 0);
        h.run(0, false, 0, &["set", k1, "new"]);
        h.run(0, false, 0, &["set", other, "x"]);
        let mset: Vec<Vec<u8>> = ["mset", k0, "a", k1, "b"].iter().map(|a| a.as_bytes().to_vec()).collect();
        super::hop_unit(&mut h.shards[0].stream, id, both, 0, &vec![(0, mset)]);
        let mut lanes: Vec<Lane> = (0..2).map(|_| Lane::default()).collect();
        for (i, lane) in lanes.iter_mut().enumerate() {
            let (start, bytes, cuts, selects) = h.shards[i].stream.take();
            lane.ingest(i as u64 + 1, start, bytes, cuts, Vec::new(), selects);
        }
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut Default::default());
        let text = String::from_utf8(out).unwrap();
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} not in {text}"));
        assert!(at("$3\r\nold") < at("$4\r\nmset") && at("$4\r\nmset") < at("$3\r\nnew"), "{text}");
        assert_eq!(text.matches("mset").count(), 1);
        assert!(at("$1\r\nx") < at("$4\r\nmset"), "{text}");
    }

    /// FLUSHDB/FLUSHALL (held over every shard, each with its cut) among
    /// SETs of one db: the merged stream selects the db once, as
    /// redis-server 7.0.15's incr file for the same commands
    /// (integration/aof's "FLUSHDB / FLUSHALL should persist in AOF"), and
    /// again only where the db changes, also across merges; a merge that
    /// starts not knowing the db (a new incr file) selects it again.
    #[test]
    fn merged_stream_selects_only_when_the_db_changes() {
        use crate::persistence::aof_file::{merge, Lane};
        let mut h = Harness::new(2);
        let (k0, k1) = (&key_of(0), &key_of(1));
        h.run(9, false, 0, &["set", k1, "value"]);
        h.run(9, true, 0, &["flushdb"]);
        h.run(9, true, 0, &["flushdb"]);
        h.run(9, false, 0, &["set", k0, "value2"]);
        h.run(9, true, 0, &["flushall"]);
        h.run(9, true, 0, &["flushall"]);
        h.run(3, false, 0, &["set", k1, "x"]);
        h.run(3, true, 0, &["flushall"]);
        let mut lanes: Vec<Lane> = (0..2).map(|_| Lane::default()).collect();
        let mut seq = 0;
        let mut take_all = |h: &mut Harness, lanes: &mut Vec<Lane>| {
            for (i, lane) in lanes.iter_mut().enumerate() {
                let (start, bytes, cuts, selects) = h.shards[i].stream.take();
                seq += 1;
                lane.ingest(seq, start, bytes, cuts, Vec::new(), selects);
            }
        };
        take_all(&mut h, &mut lanes);
        let (mut out, mut db) = (Vec::new(), crate::persistence::aof_file::Selected::default());
        merge(&mut lanes, &mut out, &mut db);
        let want = resp(&[
            &["SELECT", "9"],
            &["set", k1, "value"],
            &["flushdb"],
            &["flushdb"],
            &["set", k0, "value2"],
            &["flushall"],
            &["flushall"],
            &["SELECT", "3"],
            &["set", k1, "x"],
            &["flushall"],
        ]);
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(want).unwrap());
        // The next batches (each starting with its own SELECT) continue it.
        h.run(3, false, 0, &["set", k0, "y"]);
        h.run(3, false, 0, &["set", k1, "z"]);
        take_all(&mut h, &mut lanes);
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut db);
        assert_eq!(out, resp(&[&["set", k0, "y"], &["set", k1, "z"]]));
        // A new incr file: selected again.
        h.run(3, false, 0, &["set", k0, "w"]);
        take_all(&mut h, &mut lanes);
        let mut out = Vec::new();
        merge(&mut lanes, &mut out, &mut Default::default());
        assert_eq!(out, resp(&[&["SELECT", "3"], &["set", k0, "w"]]));
    }

    /// A held command over two shards is one unit in the lowest shard's
    /// stream, with a cut of the same id in both streams at their positions.
    #[test]
    fn held_command_is_one_unit_at_a_cut() {
        let mut h = Harness::new(2);
        // Keys of each shard.
        let (k0, k1) = (&key_of(0), &key_of(1));
        h.run(0, false, 0, &["set", k1, "old"]);
        let before1 = h.shards[1].stream.position();
        h.run(0, true, 0, &["mset", k0, "a", k1, "b"]);
        h.run(0, false, 0, &["set", k1, "new"]);
        let (_, b0, cuts0, _) = h.shards[0].stream.take();
        let (_, b1, cuts1, _) = h.shards[1].stream.take();
        assert_eq!(b0, resp(&[&["SELECT", "0"], &["mset", k0, "a", k1, "b"]]));
        assert_eq!(b1, resp(&[&["SELECT", "0"], &["set", k1, "old"], &["SELECT", "0"], &["set", k1, "new"]]));
        assert_eq!(cuts0.len(), 1);
        assert_eq!(cuts1.len(), 1);
        assert_eq!(cuts0[0].id, cuts1[0].id);
        assert_eq!((cuts0[0].at, cuts0[0].carrier), (0, 0));
        assert_eq!(cuts1[0].at, before1, "the cut in shard 1 lies between its old and new SET");
        // A held command that changes nothing leaves no cut.
        h.run(0, true, 0, &["del", "nokey-a", "nokey-b"]);
        assert!(h.shards[0].stream.take().2.is_empty());
        // Nothing is appended when no consumer is on.
        h.shards[0].stream.set_on(false);
        h.run(0, false, 0, &["set", k0, "x"]);
        assert_eq!(h.shards[0].stream.position(), b0.len() as u64);
    }
}
