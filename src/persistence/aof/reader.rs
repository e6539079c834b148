//! Reading AOF files as Redis 7.0 loads them (`loadSingleAppendOnlyFile`,
//! `loadAppendOnlyFiles`), without executing anything: the caller gets the
//! keys of an RDB preamble and the commands, each with the db it runs in,
//! and runs them through its own `call()`.
//!
//! Redis reads commands with `fgets` into a 1024-byte buffer and `fread`,
//! and this reader follows it step for step, since the verdict on a damaged
//! file (format error, truncated, or fine) decides whether the server
//! starts: a `*` line gives the argument count (C `atoi`), each argument is
//! a `$` line (C `strtol`), that many bytes, and two bytes that are skipped
//! unchecked; `#` lines are annotations (`#TS:<unix>`) and skipped; the end
//! of the file inside a command, or inside MULTI without its EXEC, is a
//! short read. Commands inside MULTI are handed over together at EXEC, as
//! Redis queues them and runs none of them without it.

use std::path::Path;

use super::manifest::{strerror, Manifest};
use crate::persistence::rdb::{self, LoadError, LoadStats};
use crate::shard::Entry;

/// Redis's `AOF_ANNOTATION_LINE_MAX_LEN`: `fgets` into a buffer this large
/// reads at most one byte less per call.
const LINE_BUFFER_BYTES: usize = 1024;

/// What a load needs to know besides the bytes.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// `aof-load-truncated`: a short last file is cut back to its last whole
    /// command and loading goes on.
    pub load_truncated: bool,
    /// `databases`: a SELECT outside 0..databases fails in Redis and leaves
    /// the db as it was.
    pub databases: usize,
    /// The load's clock, for the RDB preamble's entries.
    pub now_ms: i64,
    /// `appendfilename`: a file of exactly this name is a pre-7.0 AOF, whose
    /// RDB part Redis calls a preamble in its log, not a base.
    pub appendfilename: String,
    /// The encodings the RDB part's collections take.
    pub encodings: crate::config::EncodingLimits,
}

/// One command and the db it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub db: usize,
    pub argv: Vec<&'a [u8]>,
}

/// What a file holds, in order.
#[derive(Debug)]
pub enum Item<'a> {
    /// A key of the RDB preamble (or RDB base file).
    Key { db: usize, key: Vec<u8>, entry: Entry },
    /// A function library of the RDB preamble (its code), before its keys.
    Library(Vec<u8>),
    /// A command outside a transaction. SELECT, MULTI and EXEC never come
    /// here: they are folded into `db` and `Transaction`.
    Command(Command<'a>),
    /// The commands between MULTI and EXEC, given at EXEC. (Redis looks
    /// each command up as it reads it, so a command it does not know inside
    /// a MULTI that the file leaves open fails its load as "Unknown
    /// command"; here that transaction is dropped with the short tail.)
    Transaction(Vec<Command<'a>>),
}

/// A file read to its end (or, truncated, to its last whole command).
#[derive(Debug, Default)]
pub struct FileRead {
    /// The RDB part's statistics, when the file starts with one.
    pub rdb: Option<LoadStats>,
    /// Where the RDB part ends, 0 without one.
    pub rdb_len: usize,
    /// Commands handed over (those inside transactions included, SELECT,
    /// MULTI and EXEC not).
    pub commands: u64,
    /// Set when the file ended early and `load_truncated` allowed it.
    pub truncated: Option<Truncation>,
}

/// Where a short file is to be cut: everything before `valid_len` was
/// handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub valid_len: u64,
    /// The file ended inside MULTI: the open transaction is dropped
    /// (Redis logs "Revert incomplete MULTI/EXEC transaction ...").
    pub reverted_multi: bool,
}

impl Truncation {
    /// What Redis 7.0 logs when it loads this file anyway.
    pub fn redis_log_lines(&self, file: &str) -> Vec<String> {
        let mut lines = revert_line(self.reverted_multi, file);
        lines.push(format!("!!! Warning: short read while loading the AOF file {}!!!", file));
        lines.push(format!("!!! Truncating the AOF {} at offset {} !!!", file, self.valid_len));
        lines.push(format!("AOF {} loaded anyway because aof-load-truncated is enabled", file));
        lines
    }
}

fn revert_line(reverted_multi: bool, file: &str) -> Vec<String> {
    if reverted_multi {
        vec![format!("Revert incomplete MULTI/EXEC transaction in AOF file {}", file)]
    } else {
        Vec::new()
    }
}

/// Why a file (or a directory) cannot be loaded. Redis exits on each.
#[derive(Debug)]
pub enum AofReadError {
    /// Not a command where one must be (Redis's `fmterr`).
    Format { file: String },
    /// A short file without `aof-load-truncated` (or not the last file).
    UnexpectedEof { file: String, reverted_multi: bool },
    /// A short file that could not be cut back.
    Truncate { file: String, reason: String, reverted_multi: bool },
    /// The RDB preamble or base is damaged.
    Rdb { file: String, old_style: bool, error: LoadError },
    /// A read error other than the end of the file: a NUL where the `*`
    /// line's count starts (Redis's `readerr` with `feof` false), or I/O.
    Unrecoverable { file: String, reason: String },
    /// A file the manifest names is missing or unreadable.
    Open { file: String, reason: String, missing: bool },
    /// A file the manifest names cannot be stat'ed (missing, mostly):
    /// Redis checks every file's size before it loads any.
    Stat { file: String, reason: String },
    /// A short file before the last one. Redis has cut it back already (the
    /// cut is harmless: it drops only the partial command) and then refuses
    /// to start; the next start loads it.
    TruncatedNotLast { file: String, truncation: Truncation },
    /// The caller refused a command (e.g. "Unknown command '%s' reading the
    /// append only file %s"): its log line.
    Rejected { line: String },
}

impl AofReadError {
    /// The lines Redis 7.0 logs for this failure, in order.
    pub fn redis_log_lines(&self) -> Vec<String> {
        const EOF_ADVICE: &str = "You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. \
                                  2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.";
        match self {
            AofReadError::Format { file } => vec![format!(
                "Bad file format reading the append only file {}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>",
                file
            )],
            AofReadError::UnexpectedEof { file, reverted_multi } => {
                let mut lines = revert_line(*reverted_multi, file);
                lines.push(format!("Unexpected end of file reading the append only file {}. {}", file, EOF_ADVICE));
                lines
            }
            AofReadError::Truncate { file, reason, reverted_multi } => {
                let mut lines = revert_line(*reverted_multi, file);
                lines.push(format!("!!! Warning: short read while loading the AOF file {}!!!", file));
                lines.push(format!("Error truncating the AOF file {}: {}", file, reason));
                lines.push(format!("Unexpected end of file reading the append only file {}. {}", file, EOF_ADVICE));
                lines
            }
            AofReadError::Rdb { file, old_style, error } => {
                let mut lines = error.redis_log_lines();
                lines.push(if *old_style {
                    format!("Error reading the RDB preamble of the AOF file {}, AOF loading aborted", file)
                } else {
                    format!("Error reading the RDB base file {}, AOF loading aborted", file)
                });
                lines
            }
            AofReadError::Unrecoverable { file, reason } => vec![format!("Unrecoverable error reading the append only file {}: {}", file, reason)],
            AofReadError::Open { file, reason, missing: true } => vec![format!("The append log file {} doesn't exist: {}", file, reason)],
            AofReadError::Open { file, reason, missing: false } => {
                vec![format!("Fatal error: can't open the append log file {} for reading: {}", file, reason)]
            }
            AofReadError::Stat { file, reason } => vec![format!("Unable to obtain the AOF file {} length. stat: {}", file, reason)],
            AofReadError::TruncatedNotLast { file, truncation } => {
                let mut lines = truncation.redis_log_lines(file);
                lines.push("Fatal error: the truncated file is not the last file".to_string());
                lines
            }
            AofReadError::Rejected { line } => vec![line.clone()],
        }
    }
}

impl std::fmt::Display for AofReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redis_log_lines().join(" "))
    }
}

impl std::error::Error for AofReadError {}

/// Why the loader's caller refused an item: the read ends with Redis's
/// line for it (`AofReadError::Rejected`).
#[derive(Debug)]
pub enum Refusal {
    /// A command the caller does not know: "Unknown command '%s' reading
    /// the append only file %s", the file being the one read.
    UnknownCommand(Vec<u8>),
    /// Any other reason, logged as it is.
    Line(String),
}

impl From<String> for Refusal {
    fn from(line: String) -> Refusal {
        Refusal::Line(line)
    }
}

impl Refusal {
    fn into_error(self, file: &str) -> AofReadError {
        let line = match self {
            Refusal::UnknownCommand(name) => format!("Unknown command '{}' reading the append only file {}", String::from_utf8_lossy(&name), file),
            Refusal::Line(line) => line,
        };
        AofReadError::Rejected { line }
    }
}

/// How a read of the command part ended early.
enum Stop {
    /// Redis's `fmterr`.
    Format,
    /// Redis's `readerr` at the end of the file (`uxeof`).
    Eof,
    /// Redis's `readerr` before the end.
    Unrecoverable,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// `fgets(buf, 1024, fp)`: up to 1023 bytes, through the first `\n`;
    /// `None` at the end of the file.
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let limit = rest.len().min(LINE_BUFFER_BYTES - 1);
        let n = memchr::memchr(b'\n', &rest[..limit]).map_or(limit, |i| i + 1);
        self.pos += n;
        Some(&rest[..n])
    }

    /// `fread(p, n, 1, fp)`: all `n` bytes or none.
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let left = self.data.len() - self.pos;
        // Compared with what is left, never added to `pos`: a lying length
        // can neither overflow nor make anything be reserved.
        if n > left as u64 {
            self.pos = self.data.len();
            return None;
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Some(s)
    }
}

/// C's `atoi`/`strtol` on a line: the text up to a NUL, blanks, a sign,
/// digits (saturating like `strtol`).
fn c_number(line: &[u8]) -> i64 {
    let end = memchr::memchr(0, line).unwrap_or(line.len());
    super::manifest::c_strtoll(&line[..end])
}

/// Reads one AOF file's bytes. `name` is the file's name as Redis logs it.
/// `on_item` gets every key and command in order and may refuse one with a
/// log line, which ends the load. A short file with `load_truncated` comes
/// back `Ok` with `truncated` set; the caller (or `load_dir`) cuts the file.
///
/// Each file starts in db 0: Redis loads every file with a new client.
pub fn read_aof<'a>(
    name: &str,
    data: &'a [u8],
    opts: &ReadOptions,
    mut on_item: impl FnMut(Item<'a>) -> Result<(), Refusal>,
) -> Result<FileRead, AofReadError> {
    let mut read = FileRead::default();
    let mut rejected: Option<Refusal> = None;
    if data.len() >= 5 && &data[..5] == b"REDIS" {
        let mut keys = Vec::new();
        let (stats, len) = rdb::load_aof_preamble(data, opts.now_ms, &opts.encodings, |db, key, entry| keys.push((db, key, entry)))
            .map_err(|error| AofReadError::Rdb { file: name.to_string(), old_style: name == opts.appendfilename, error })?;
        for code in &stats.functions {
            on_item(Item::Library(code.clone())).map_err(|r| r.into_error(name))?;
        }
        for (db, key, entry) in keys {
            on_item(Item::Key { db, key, entry }).map_err(|r| r.into_error(name))?;
        }
        read.rdb = Some(stats);
        read.rdb_len = len;
    }
    let mut c = Cursor { data, pos: read.rdb_len };
    let mut db = 0usize;
    // Inside MULTI: the queued commands and the db they leave selected.
    let mut multi: Option<(Vec<Command<'a>>, usize)> = None;
    // Redis's valid_up_to starts at 0 even after an RDB preamble, so a file
    // cut right after its preamble is cut to nothing (seen with 7.0.15): the
    // preamble's end is the last valid offset here instead.
    let mut valid_up_to = read.rdb_len as u64;
    let mut valid_before_multi = valid_up_to;
    let mut loops = 0u64;
    let stop = loop {
        // INFO's loading_loaded_bytes, every 1024 commands as Redis.
        if loops.is_multiple_of(1024) {
            rdb::LOAD_PROGRESS.note_aof(c.pos, loops);
        }
        loops += 1;
        let Some(line) = c.line() else { break None };
        if line[0] == b'#' {
            continue;
        }
        if line[0] != b'*' {
            break Some(Stop::Format);
        }
        if line.len() == 1 || line[1] == 0 {
            // feof is set only when fgets ran into the end before a '\n'.
            let at_eof = c.pos == data.len() && !line.ends_with(b"\n");
            break Some(if at_eof { Stop::Eof } else { Stop::Unrecoverable });
        }
        // atoi: an int, whatever strtol made of the digits.
        let argc = c_number(&line[1..]) as i32;
        if argc < 1 {
            break Some(Stop::Format);
        }
        // No reservation from the count alone: each argument takes at least
        // four bytes of the file.
        let mut argv = Vec::with_capacity((argc as usize).min((data.len() - c.pos) / 4 + 1));
        let mut short = None;
        for _ in 0..argc {
            let Some(len_line) = c.line() else {
                short = Some(Stop::Eof);
                break;
            };
            if len_line[0] != b'$' {
                short = Some(Stop::Format);
                break;
            }
            // strtol into an unsigned long: a negative length is huge.
            let len = c_number(&len_line[1..]) as u64;
            let Some(arg) = c.take(len) else {
                short = Some(Stop::Eof);
                break;
            };
            argv.push(arg);
            // The CRLF is read and not looked at.
            if c.take(2).is_none() {
                short = Some(Stop::Eof);
                break;
            }
        }
        if short.is_some() {
            break short;
        }
        let command = Command { db: multi.as_ref().map_or(db, |m| m.1), argv };
        let name = command.argv[0];
        if name.eq_ignore_ascii_case(b"multi") {
            valid_before_multi = valid_up_to;
        }
        if let Some((queued, multi_db)) = &mut multi {
            if name.eq_ignore_ascii_case(b"exec") {
                let (queued, multi_db) = multi.take().unwrap();
                db = multi_db;
                if let Err(line) = on_item(Item::Transaction(queued)) {
                    rejected = Some(line);
                    break None;
                }
            } else {
                // A nested MULTI fails inside EXEC in Redis: no effect.
                if !name.eq_ignore_ascii_case(b"multi") {
                    if let Some(to) = select_target(&command, opts.databases) {
                        *multi_db = to.unwrap_or(*multi_db);
                    } else {
                        read.commands += 1;
                        queued.push(command);
                    }
                }
            }
        } else if name.eq_ignore_ascii_case(b"multi") {
            multi = Some((Vec::new(), db));
        } else if name.eq_ignore_ascii_case(b"exec") {
            // EXEC without MULTI: an error reply nobody reads.
        } else if let Some(to) = select_target(&command, opts.databases) {
            db = to.unwrap_or(db);
        } else {
            read.commands += 1;
            if let Err(line) = on_item(Item::Command(command)) {
                rejected = Some(line);
                break None;
            }
        }
        valid_up_to = c.pos as u64;
    };
    if let Some(refusal) = rejected {
        return Err(refusal.into_error(name));
    }
    let file = || name.to_string();
    let (stop, reverted_multi) = match stop {
        None if multi.is_some() => {
            valid_up_to = valid_before_multi;
            (Stop::Eof, true)
        }
        None => return Ok(read),
        Some(s) => (s, false),
    };
    match stop {
        Stop::Format => Err(AofReadError::Format { file: file() }),
        Stop::Unrecoverable => Err(AofReadError::Unrecoverable { file: file(), reason: "Success".into() }),
        Stop::Eof if opts.load_truncated => {
            read.truncated = Some(Truncation { valid_len: valid_up_to, reverted_multi });
            Ok(read)
        }
        Stop::Eof => Err(AofReadError::UnexpectedEof { file: file(), reverted_multi }),
    }
}

/// `None` for anything but SELECT; for SELECT, the db it switches to, or
/// `Some(None)` when it fails in Redis (not a number, out of range, no
/// argument) and so changes nothing. Either way the SELECT itself is not
/// handed over: its only effect is the db.
fn select_target(command: &Command<'_>, databases: usize) -> Option<Option<usize>> {
    if !command.argv[0].eq_ignore_ascii_case(b"select") {
        return None;
    }
    let index = command.argv.get(1).and_then(|a| std::str::from_utf8(a).ok()).and_then(|s| s.parse::<i64>().ok());
    Some(index.filter(|&n| n >= 0 && (n as u64) < databases as u64).map(|n| n as usize))
}

/// The result of loading a whole AOF directory.
#[derive(Debug, Default)]
pub struct DirLoad {
    /// Lines Redis logs along the way ("DB loaded from base file ..." at
    /// notice level, the truncation lines as warnings): logged as they
    /// happen, as Redis does (so a later file's failure follows the lines
    /// of the files before it), and kept here.
    pub log_lines: Vec<LogLine>,
    /// The base file's size (Redis's `aof_rewrite_base_size` at start).
    pub base_size: u64,
    /// The size of base and incr files together (`aof_current_size`), after
    /// any truncation.
    pub total_size: u64,
    /// The last file was short and was cut back.
    pub truncated: bool,
    pub commands: u64,
}

/// One line `load_dir` logs, at Redis's level for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Redis logs it with LL_WARNING (`#`), else LL_NOTICE (`*`).
    pub warning: bool,
    pub text: String,
}

impl LogLine {
    fn notice(text: String) -> LogLine {
        LogLine { warning: false, text }
    }

    /// Logs it at its level.
    pub fn log(&self) {
        if self.warning {
            crate::warning!("{}", self.text);
        } else {
            crate::notice!("{}", self.text);
        }
    }
}

impl DirLoad {
    fn note(&mut self, line: LogLine) {
        line.log();
        self.log_lines.push(line);
    }
}

/// How `load_dir` ended.
#[derive(Debug)]
pub enum DirStatus {
    /// The manifest lists no base and no incr file (Redis's AOF_NOT_EXIST):
    /// start empty.
    NotExist,
    /// Every listed file is empty (AOF_EMPTY).
    Empty,
    Loaded(DirLoad),
}

/// Loads the base and then every incr file the manifest lists, as Redis's
/// `loadAppendOnlyFiles`: with `load_truncated` a short file is cut back on
/// disk to its last whole command, and loading goes on if it was the last
/// file; a listed file that is missing is fatal; empty files are skipped.
pub fn load_dir(
    aof_dir: &Path,
    manifest: &Manifest,
    opts: &ReadOptions,
    mut on_item: impl FnMut(Item<'_>) -> Result<(), Refusal>,
) -> Result<DirStatus, AofReadError> {
    let files: Vec<_> = manifest.base.iter().chain(&manifest.incr).collect();
    if files.is_empty() {
        return Ok(DirStatus::NotExist);
    }
    let mut out = DirLoad::default();
    for info in &files {
        match std::fs::metadata(info.path_in(aof_dir)) {
            Ok(m) => out.total_size += m.len(),
            Err(e) => return Err(AofReadError::Stat { file: info.display_name(), reason: strerror(&e) }),
        }
    }
    if out.total_size == 0 {
        return Ok(DirStatus::Empty);
    }
    let mut file_offset = 0u64;
    for (i, info) in files.iter().enumerate() {
        rdb::LOAD_PROGRESS.file_offset.store(file_offset, std::sync::atomic::Ordering::Relaxed);
        let name = info.display_name();
        let path = info.path_in(aof_dir);
        let last_file = i + 1 == files.len();
        let data = std::fs::read(&path).map_err(|e| AofReadError::Open {
            file: name.clone(),
            reason: strerror(&e),
            missing: e.kind() == std::io::ErrorKind::NotFound,
        })?;
        file_offset += data.len() as u64;
        if i == 0 && manifest.base.is_some() {
            out.base_size = data.len() as u64;
        }
        if data.is_empty() {
            continue;
        }
        if data.starts_with(b"REDIS") {
            out.note(LogLine::notice(if name == opts.appendfilename {
                "Reading RDB preamble from AOF file...".to_string()
            } else {
                "Reading RDB base file on AOF loading...".to_string()
            }));
        }
        let started = std::time::Instant::now();
        let read = read_aof(&name, &data, opts, &mut on_item)?;
        out.commands += read.commands;
        if read.rdb.is_some() && name == opts.appendfilename {
            out.note(LogLine::notice("Reading the remaining AOF tail...".to_string()));
        }
        if let Some(t) = read.truncated {
            let cut = std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(t.valid_len));
            if let Err(e) = cut {
                return Err(AofReadError::Truncate { file: name, reason: strerror(&e), reverted_multi: t.reverted_multi });
            }
            if !last_file {
                return Err(AofReadError::TruncatedNotLast { file: name, truncation: t });
            }
            for text in t.redis_log_lines(&name) {
                out.note(LogLine { warning: true, text });
            }
            out.total_size -= data.len() as u64 - t.valid_len;
            out.truncated = true;
        }
        let kind = if i == 0 && manifest.base.is_some() { "base" } else { "incr" };
        out.note(LogLine::notice(format!("DB loaded from {} file {}: {:.3} seconds", kind, name, started.elapsed().as_secs_f32())));
    }
    rdb::LOAD_PROGRESS.file_offset.store(0, std::sync::atomic::Ordering::Relaxed);
    Ok(DirStatus::Loaded(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::aof::append::append_command;

    fn opts(load_truncated: bool) -> ReadOptions {
        ReadOptions { load_truncated, databases: 16, now_ms: 0, appendfilename: "appendonly.aof".into(), encodings: Default::default() }
    }

    /// Every command as (db, "arg arg ..."), transactions as "[...]".
    fn read(data: &[u8], load_truncated: bool) -> (Result<FileRead, AofReadError>, Vec<String>) {
        let mut seen = Vec::new();
        let r = read_aof("f.aof", data, &opts(load_truncated), |item| {
            let show = |c: &Command| format!("{}:{}", c.db, c.argv.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>().join(" "));
            seen.push(match item {
                Item::Command(c) => show(&c),
                Item::Transaction(cs) => format!("[{}]", cs.iter().map(show).collect::<Vec<_>>().join(", ")),
                Item::Key { db, key, .. } => format!("key {}:{}", db, String::from_utf8_lossy(&key)),
                Item::Library(code) => format!("library {}", String::from_utf8_lossy(&code)),
            });
            Ok(())
        });
        (r, seen)
    }

    fn resp(cmds: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            append_command(&mut out, c);
        }
        out
    }

    #[test]
    fn commands_selects_annotations_and_transactions() {
        let mut data = b"#TS:1796547123\r\n".to_vec();
        data.extend(resp(&[&["SELECT", "0"], &["set", "a", "1"], &["select", "3"], &["SET", "b", "2"]]));
        data.extend(b"#TS:1796547124\r\n");
        data.extend(resp(&[&["MULTI"], &["set", "c", "3"], &["SELECT", "5"], &["incr", "c"], &["EXEC"], &["del", "x"], &["SELECT", "99"], &["get", "y"]]));
        let (r, seen) = read(&data, false);
        let r = r.unwrap();
        assert_eq!(seen, vec!["0:set a 1", "3:SET b 2", "[3:set c 3, 5:incr c]", "5:del x", "5:get y"]);
        assert_eq!((r.commands, r.truncated, r.rdb_len), (6, None, 0));
    }

    #[test]
    fn short_files_are_truncated_at_the_last_whole_command() {
        let whole = resp(&[&["set", "a", "1"], &["set", "b", "2"]]);
        let first = resp(&[&["set", "a", "1"]]).len() as u64;
        // Cut anywhere inside the second command: `*3\r`, `$1\r\nb`, the
        // missing CRLF, ...
        for cut in first as usize + 1..whole.len() {
            let (r, seen) = read(&whole[..cut], true);
            assert_eq!(r.unwrap().truncated, Some(Truncation { valid_len: first, reverted_multi: false }), "cut at {}", cut);
            assert_eq!(seen, vec!["0:set a 1"]);
            let (r, _) = read(&whole[..cut], false);
            assert!(matches!(r, Err(AofReadError::UnexpectedEof { reverted_multi: false, .. })), "cut at {}", cut);
        }
        // A MULTI without EXEC: cut before the MULTI, nothing of it handed.
        let mut data = resp(&[&["set", "a", "1"], &["MULTI"], &["set", "b", "2"]]);
        let (r, seen) = read(&data, true);
        let t = r.unwrap().truncated.unwrap();
        assert_eq!(t, Truncation { valid_len: first, reverted_multi: true });
        assert_eq!(seen, vec!["0:set a 1"]);
        assert_eq!(
            t.redis_log_lines("f.aof"),
            vec![
                "Revert incomplete MULTI/EXEC transaction in AOF file f.aof",
                "!!! Warning: short read while loading the AOF file f.aof!!!",
                "!!! Truncating the AOF f.aof at offset 27 !!!",
                "AOF f.aof loaded anyway because aof-load-truncated is enabled",
            ]
        );
        // Short inside the MULTI: Redis cuts after the last whole command,
        // inside the transaction.
        let inside = data.len() as u64;
        data.extend(b"*2\r\n$3\r\nget");
        let (r, seen) = read(&data, true);
        assert_eq!(r.unwrap().truncated, Some(Truncation { valid_len: inside, reverted_multi: false }));
        assert_eq!(seen, vec!["0:set a 1"]);
    }

    #[test]
    fn format_errors_are_not_truncation() {
        for bad in [&b"set a 1\r\n"[..], b"*0\r\n", b"*-1\r\n", b"*x\r\n", b"*2\r\n+OK\r\n", b"*1\r\n$1\r\na\r\n\r\n"] {
            let (r, _) = read(bad, true);
            assert!(matches!(r, Err(AofReadError::Format { .. })), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            AofReadError::Format { file: "f".into() }.redis_log_lines(),
            vec!["Bad file format reading the append only file f: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"]
        );
        // Redis skips the two bytes after an argument unread.
        let (r, seen) = read(b"*1\r\n$4\r\nPINGxx", false);
        assert!(r.is_ok());
        assert_eq!(seen, vec!["0:PING"]);
        // `*` alone at the end is short; with more after it, unrecoverable.
        assert!(read(b"*", true).0.unwrap().truncated.is_some());
        assert!(matches!(read(b"*\0\r\n", true).0, Err(AofReadError::Unrecoverable { .. })));
        assert!(matches!(read(b"*\0", true).0, Ok(FileRead { truncated: Some(_), .. })));
    }

    #[test]
    fn lying_lengths_reserve_nothing() {
        // A count of 2^31-1 and a length of 2^63: both just short reads.
        let (r, _) = read(b"*2147483647\r\n$1\r\na\r\n", true);
        assert_eq!(r.unwrap().truncated.unwrap().valid_len, 0);
        let (r, _) = read(b"*1\r\n$9223372036854775807\r\nabc", true);
        assert_eq!(r.unwrap().truncated.unwrap().valid_len, 0);
        let (r, _) = read(b"*1\r\n$-1\r\nabc", true);
        assert!(r.unwrap().truncated.is_some());
    }

    /// An annotation longer than fgets's buffer: the rest is read as a
    /// line of its own, which is no command.
    #[test]
    fn long_annotations_split_as_in_redis() {
        // 1023 bytes with its CRLF: one line.
        let mut data = format!("#{}\r\n", "x".repeat(1020)).into_bytes();
        data.extend(resp(&[&["set", "a", "1"]]));
        assert!(read(&data, false).0.is_ok());
        // One byte more: the '\n' is left over as a "line" of its own.
        let mut data = format!("#{}\r\n", "x".repeat(1021)).into_bytes();
        data.extend(resp(&[&["set", "a", "1"]]));
        assert!(matches!(read(&data, false).0, Err(AofReadError::Format { .. })));
    }

    #[test]
    fn rdb_preamble_keys_then_commands() {
        let mut e = rdb::Encoder::new(false, 1024);
        e.save_header();
        e.save_functions(&[b"#!lua name=l".to_vec()]);
        e.save_select_db(2, 1, 1);
        e.save_pair(b"k", &Entry { value: crate::shard::Value::from_vec(b"v".to_vec()), expire_at_ms: 5, access_ms: 0 });
        e.buf.push(rdb::OPCODE_EOF);
        e.buf.extend_from_slice(&0u64.to_le_bytes());
        let rdb_len = e.buf.len();
        let mut data = e.buf.clone();
        data.extend(resp(&[&["set", "a", "1"]]));
        // An expired key in a preamble is loaded all the same, as Redis does.
        let mut o = opts(true);
        o.now_ms = 1_000_000;
        let mut seen = Vec::new();
        let r = read_aof("f.aof", &data, &o, |item| {
            seen.push(match item {
                Item::Key { db, key, entry } => format!("key {}:{}:{}", db, String::from_utf8_lossy(&key), entry.expire_at_ms),
                Item::Command(c) => format!("{}:{}", c.db, String::from_utf8_lossy(c.argv[0])),
                Item::Transaction(_) => "txn".into(),
                Item::Library(code) => format!("library {}", String::from_utf8_lossy(&code)),
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec!["library #!lua name=l", "key 2:k:5", "0:set"]);
        assert_eq!(r.rdb_len, rdb_len);
        // Cut right after the preamble: cut back to the preamble's end.
        let (r, _) = read(&data[..rdb_len + 3], true);
        assert_eq!(r.unwrap().truncated.unwrap().valid_len, rdb_len as u64);
        // A damaged preamble: the RDB loader's error, named as Redis names it.
        let err = read_aof("appendonly.aof", &data[..rdb_len - 4], &opts(true), |_| Ok(())).unwrap_err();
        assert_eq!(err.redis_log_lines().last().unwrap(), "Error reading the RDB preamble of the AOF file appendonly.aof, AOF loading aborted");
    }

    #[test]
    fn a_refused_command_ends_the_read_with_its_line() {
        let data = resp(&[&["set", "a", "1"], &["nosuch"], &["set", "b", "2"]]);
        let mut n = 0;
        let err = read_aof("f.aof", &data, &opts(false), |item| {
            n += 1;
            match item {
                Item::Command(c) if c.argv[0] == b"nosuch" => Err(Refusal::UnknownCommand(c.argv[0].to_vec())),
                _ => Ok(()),
            }
        })
        .unwrap_err();
        assert_eq!(n, 2);
        assert_eq!(err.redis_log_lines(), vec!["Unknown command 'nosuch' reading the append only file f.aof"]);
    }

    #[test]
    fn load_dir_walks_base_then_incr_files_as_redis() {
        use crate::persistence::aof::manifest::{AofInfo, FileType};
        let dir = std::env::temp_dir().join(format!("ringkv-aof-load-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let info = |name: &str, seq, kind| AofInfo { name: name.as_bytes().to_vec(), seq, kind };
        let m = Manifest { base: Some(info("b.aof", 1, FileType::Base)), incr: vec![info("i.aof", 1, FileType::Incr)], ..Default::default() };
        let count = |o: &ReadOptions| {
            let mut n = 0;
            load_dir(&dir, &m, o, |_| {
                n += 1;
                Ok(())
            })
            .map(|s| (s, n))
        };
        assert!(matches!(load_dir(&dir, &Manifest::default(), &opts(true), |_| Ok(())), Ok(DirStatus::NotExist)));
        let err = count(&opts(true)).unwrap_err();
        assert_eq!(err.redis_log_lines(), vec!["Unable to obtain the AOF file b.aof length. stat: No such file or directory"]);
        std::fs::write(dir.join("b.aof"), b"").unwrap();
        std::fs::write(dir.join("i.aof"), b"").unwrap();
        assert!(matches!(count(&opts(true)), Ok((DirStatus::Empty, 0))));
        // An empty base is skipped.
        std::fs::write(dir.join("i.aof"), resp(&[&["set", "z", "v"]])).unwrap();
        assert!(matches!(count(&opts(true)), Ok((DirStatus::Loaded(DirLoad { total_size: 27, base_size: 0, .. }), 1))));
        // A short base before an incr file: cut, then refused (the lines
        // redis-server 7.0.15 logged for this directory).
        let mut base = resp(&[&["SET", "k", "v"]]);
        base.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nx");
        std::fs::write(dir.join("b.aof"), &base).unwrap();
        let err = count(&opts(false)).unwrap_err();
        assert!(matches!(err, AofReadError::UnexpectedEof { .. }));
        assert_eq!(std::fs::metadata(dir.join("b.aof")).unwrap().len(), base.len() as u64);
        let err = count(&opts(true)).unwrap_err();
        assert_eq!(
            err.redis_log_lines(),
            vec![
                "!!! Warning: short read while loading the AOF file b.aof!!!",
                "!!! Truncating the AOF b.aof at offset 27 !!!",
                "AOF b.aof loaded anyway because aof-load-truncated is enabled",
                "Fatal error: the truncated file is not the last file",
            ]
        );
        assert_eq!(std::fs::metadata(dir.join("b.aof")).unwrap().len(), 27);
        // The next start loads both.
        assert!(matches!(count(&opts(false)), Ok((DirStatus::Loaded(DirLoad { truncated: false, .. }), 2))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Damaged streams (bytes flipped, dropped, cut): the reader never
    /// panics, and a truncated verdict is honest: the file cut at
    /// `valid_len` reads cleanly to the same commands.
    #[test]
    fn damaged_streams_cut_back_to_a_clean_file() {
        let mut clean = b"#TS:1\r\n".to_vec();
        clean.extend(resp(&[&["SELECT", "1"], &["set", "a", "1"], &["MULTI"], &["incr", "a"], &["set", "b", ""], &["EXEC"], &["del", "a"]]));
        let mut seed = 0x2545F4914F6CDD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut truncated, mut format) = (0, 0);
        for _ in 0..20_000 {
            let mut data = clean.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % data.len() as u64) as usize;
                match next() % 3 {
                    0 => data[at] = next() as u8,
                    1 => {
                        data.remove(at);
                    }
                    _ => data.truncate(at),
                }
                if data.is_empty() {
                    break;
                }
            }
            let (r, seen) = read(&data, true);
            match r {
                Ok(FileRead { truncated: Some(t), .. }) => {
                    truncated += 1;
                    assert!(t.valid_len as usize <= data.len());
                    let (again, seen_again) = read(&data[..t.valid_len as usize], true);
                    let again = again.expect("the cut file does not read");
                    // Cut inside MULTI (a short command in it): Redis's cut
                    // leaves the open MULTI, reverted at the next load.
                    if let Some(t) = again.truncated {
                        assert!(t.reverted_multi);
                    }
                    assert_eq!(seen_again, seen);
                }
                Ok(_) => {}
                Err(AofReadError::Format { .. }) | Err(AofReadError::Unrecoverable { .. }) => format += 1,
                Err(e) => panic!("{:?}", e),
            }
        }
        assert!(truncated > 1000 && format > 1000, "{} truncated, {} format errors", truncated, format);
    }
}
