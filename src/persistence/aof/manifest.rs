//! The manifest of Redis 7.0's multi-part AOF: which files of
//! `appenddirname/` hold the data, in which order, and which are history
//! waiting to be deleted.
//!
//! One line per file, `file <name> seq <n> type <b|h|i>`, base first, then
//! history, then the incr files in sequence order — byte for byte what Redis
//! 7.0.15 writes, so `redis-check-aof` and redis-server read ringkv's
//! directory and ringkv reads theirs. Parsing follows Redis's
//! `aofLoadManifestFromFile`, quirks included (checked against
//! `redis-check-aof` 7.0.15): a last line without its newline is "too long",
//! a file with only comments is an empty manifest but not an error, `seq 0`
//! is a format error, unknown key/value pairs are skipped (forward
//! compatibility), only the first letter of the type counts.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const BASE_FILE_SUFFIX: &str = ".base";
pub const INCR_FILE_SUFFIX: &str = ".incr";
pub const RDB_FORMAT_SUFFIX: &str = ".rdb";
pub const AOF_FORMAT_SUFFIX: &str = ".aof";
pub const MANIFEST_NAME_SUFFIX: &str = ".manifest";
pub const TEMP_FILE_NAME_PREFIX: &str = "temp-";

/// Redis reads the manifest with `fgets` into a buffer of this many bytes
/// plus one: a longer line is refused.
const MANIFEST_MAX_LINE: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Base,
    History,
    Incr,
}

impl FileType {
    pub fn letter(self) -> u8 {
        match self {
            FileType::Base => b'b',
            FileType::History => b'h',
            FileType::Incr => b'i',
        }
    }
}

/// One `file ... seq ... type ...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofInfo {
    /// A bare file name inside the AOF directory (bytes: Redis's `\xHH`
    /// quoting can carry any byte, and Linux paths are bytes).
    pub name: Vec<u8>,
    pub seq: i64,
    pub kind: FileType,
}

impl AofInfo {
    /// The file's path inside `aof_dir`.
    pub fn path_in(&self, aof_dir: &Path) -> PathBuf {
        aof_dir.join(OsStr::from_bytes(&self.name))
    }

    /// The name as Redis logs it (`%s` of the raw bytes).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The manifest line, as `aofInfoFormat` writes it: the name quoted
    /// (`sdscatrepr`) only when it needs it (`sdsneedsrepr`).
    fn format_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"file ");
        if self.name.iter().any(|&c| needs_repr(c)) {
            crate::util::cat_repr(out, &self.name);
        } else {
            out.extend_from_slice(&self.name);
        }
        out.extend_from_slice(format!(" seq {} type {}\n", self.seq, self.kind.letter() as char).as_bytes());
    }
}

/// The whole manifest, as Redis keeps it in `aofManifest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofInfo>,
    /// Files of earlier generations, deleted after a successful rewrite.
    pub history: Vec<AofInfo>,
    /// In sequence order (strictly increasing: the parser checks it).
    pub incr: Vec<AofInfo>,
    /// The seq of the current base; the next base gets this plus one.
    pub curr_base_seq: i64,
    /// The seq of the last incr file; the next incr gets this plus one.
    pub curr_incr_seq: i64,
}

/// Why a manifest was refused, with what Redis logs before it exits(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The 1-based line number (comments count) and the trimmed line, when
    /// Redis has one to show.
    pub line: Option<(usize, String)>,
    /// Redis's reason, verbatim.
    pub reason: &'static str,
}

impl ManifestError {
    /// The lines Redis 7.0 logs (as `serverLog` arguments, each ending in the
    /// newline Redis adds to the format).
    pub fn redis_log_lines(&self) -> Vec<String> {
        let mut lines = vec!["\n*** FATAL AOF MANIFEST FILE ERROR ***\n".to_string()];
        if let Some((n, text)) = &self.line {
            lines.push(format!("Reading the manifest file, at line {}\n", n));
            lines.push(format!(">>> '{}'\n", text));
        }
        lines.push(format!("{}\n", self.reason));
        lines
    }
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.line {
            Some((n, text)) => write!(f, "{} (manifest line {}: '{}')", self.reason, n, text),
            None => write!(f, "{}", self.reason),
        }
    }
}

impl std::error::Error for ManifestError {}

pub const ERR_EMPTY: &str = "Found an empty AOF manifest";
pub const ERR_TOO_LONG: &str = "The AOF manifest file contains too long line";
pub const ERR_FORMAT: &str = "Invalid AOF manifest file format";
pub const ERR_PATH: &str = "File can't be a path, just a filename";
pub const ERR_DUPLICATE_BASE: &str = "Found duplicate base file information";
pub const ERR_NON_MONOTONIC: &str = "Found a non-monotonic sequence number";
pub const ERR_UNKNOWN_TYPE: &str = "Unknown AOF file type";

/// `<appendfilename>.manifest`
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{}{}", appendfilename, MANIFEST_NAME_SUFFIX)
}

/// `temp-<appendfilename>.manifest`, where the new manifest is written
/// before it is renamed over the old one.
pub fn temp_manifest_name(appendfilename: &str) -> String {
    format!("{}{}{}", TEMP_FILE_NAME_PREFIX, appendfilename, MANIFEST_NAME_SUFFIX)
}

/// `temp-<appendfilename>.incr`: Redis's incr file while AOF is being turned
/// on (AOF_WAIT_REWRITE), renamed into the manifest when the rewrite ends.
pub fn temp_incr_name(appendfilename: &str) -> String {
    format!("{}{}{}", TEMP_FILE_NAME_PREFIX, appendfilename, INCR_FILE_SUFFIX)
}

/// `temp-rewriteaof-bg-<pid>.aof`, in the server's `dir` (not the AOF
/// directory): the new base the rewrite child leaves for the parent, which
/// renames it into the AOF directory under the manifest's new base name.
pub fn temp_rewrite_base_name(child_pid: u32) -> String {
    format!("temp-rewriteaof-bg-{}.aof", child_pid)
}

/// `temp-rewriteaof-<pid>.aof`, in `dir`: what `rewriteAppendOnlyFile`
/// writes and fsyncs before renaming it to its target (the name above in a
/// rewrite child; the first base itself at a start with no AOF).
pub fn temp_foreground_rewrite_name(pid: u32) -> String {
    format!("temp-rewriteaof-{}.aof", pid)
}

impl Manifest {
    /// Parses a manifest file's bytes with Redis's rules and messages.
    pub fn parse(data: &[u8]) -> Result<Manifest, ManifestError> {
        let mut am = Manifest::default();
        let mut maxseq = 0i64;
        let mut pos = 0usize;
        let mut linenum = 0usize;
        let fail = |line: Option<(usize, &[u8])>, reason| Err(ManifestError { line: line.map(|(n, l)| (n, String::from_utf8_lossy(l).into_owned())), reason });
        loop {
            // fgets: up to MANIFEST_MAX_LINE bytes, through the first '\n'.
            if pos >= data.len() {
                if linenum == 0 {
                    return fail(None, ERR_EMPTY);
                }
                return Ok(am);
            }
            let rest = &data[pos..];
            let limit = rest.len().min(MANIFEST_MAX_LINE);
            let n = memchr::memchr(b'\n', &rest[..limit]).map_or(limit, |i| i + 1);
            // C string functions stop at a NUL byte.
            let buf = &rest[..n];
            let buf = &buf[..memchr::memchr(0, buf).unwrap_or(buf.len())];
            pos += n;
            linenum += 1;
            if buf.first() == Some(&b'#') {
                continue;
            }
            if !buf.contains(&b'\n') {
                return fail(None, ERR_TOO_LONG);
            }
            let line = trim(buf, b" \t\r\n");
            let here = Some((linenum, line));
            if line.is_empty() {
                return fail(here, ERR_FORMAT);
            }
            let argv = match split_args(line) {
                Some(a) if a.len() >= 6 && a.len() % 2 == 0 => a,
                _ => return fail(here, ERR_FORMAT),
            };
            let (mut name, mut seq, mut kind) = (None, 0i64, 0u8);
            for pair in argv.chunks(2) {
                let (key, value) = (&pair[0], &pair[1]);
                if key.eq_ignore_ascii_case(b"file") {
                    // pathIsBaseName: neither separator ('.' and '..' pass).
                    if value.contains(&b'/') || value.contains(&b'\\') {
                        return fail(here, ERR_PATH);
                    }
                    // sdsnew: the name ends at a NUL a `\x00` escape put in.
                    name = Some(value[..memchr::memchr(0, value).unwrap_or(value.len())].to_vec());
                } else if key.eq_ignore_ascii_case(b"seq") {
                    seq = c_strtoll(value);
                } else if key.eq_ignore_ascii_case(b"type") {
                    kind = value.first().copied().unwrap_or(0);
                }
            }
            let name = match name {
                Some(n) if seq != 0 && kind != 0 => n,
                _ => return fail(here, ERR_FORMAT),
            };
            match kind {
                b'b' => {
                    if am.base.is_some() {
                        return fail(here, ERR_DUPLICATE_BASE);
                    }
                    am.base = Some(AofInfo { name, seq, kind: FileType::Base });
                    am.curr_base_seq = seq;
                }
                b'h' => am.history.push(AofInfo { name, seq, kind: FileType::History }),
                b'i' => {
                    if seq <= maxseq {
                        return fail(here, ERR_NON_MONOTONIC);
                    }
                    am.incr.push(AofInfo { name, seq, kind: FileType::Incr });
                    am.curr_incr_seq = seq;
                    maxseq = seq;
                }
                _ => return fail(here, ERR_UNKNOWN_TYPE),
            }
        }
    }

    /// The manifest's text (`getAofManifestAsString`): base, history, incr.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for info in self.base.iter().chain(&self.history).chain(&self.incr) {
            info.format_into(&mut out);
        }
        out
    }

    /// Starts a new base generation (`getNewBaseFileNameAndMarkPreAsHistory`):
    /// the old base becomes the first history file, the new one is
    /// `<appendfilename>.<seq>.base.rdb` (or `.base.aof` without the RDB
    /// preamble). Returns the new base.
    pub fn new_base(&mut self, appendfilename: &str, rdb_preamble: bool) -> &AofInfo {
        if let Some(mut old) = self.base.take() {
            old.kind = FileType::History;
            self.history.insert(0, old);
        }
        self.curr_base_seq += 1;
        let format = if rdb_preamble { RDB_FORMAT_SUFFIX } else { AOF_FORMAT_SUFFIX };
        let name = format!("{}.{}{}{}", appendfilename, self.curr_base_seq, BASE_FILE_SUFFIX, format);
        self.base.insert(AofInfo { name: name.into_bytes(), seq: self.curr_base_seq, kind: FileType::Base })
    }

    /// Adds the next incr file, `<appendfilename>.<seq>.incr.aof`
    /// (`getNewIncrAofName`): at a rewrite's start, appends move to it.
    pub fn new_incr(&mut self, appendfilename: &str) -> &AofInfo {
        self.curr_incr_seq += 1;
        let name = format!("{}.{}{}{}", appendfilename, self.curr_incr_seq, INCR_FILE_SUFFIX, AOF_FORMAT_SUFFIX);
        self.incr.push(AofInfo { name: name.into_bytes(), seq: self.curr_incr_seq, kind: FileType::Incr });
        self.incr.last().unwrap()
    }

    /// The incr file appends go to at start-up: the last one, or a new one
    /// when there is none (`getLastIncrAofName`).
    pub fn last_incr_or_new(&mut self, appendfilename: &str) -> &AofInfo {
        if self.incr.is_empty() {
            return self.new_incr(appendfilename);
        }
        self.incr.last().unwrap()
    }

    /// After a successful rewrite (`markRewrittenIncrAofAsHistory`): every
    /// incr file the new base covers becomes history. With AOF on, the last
    /// incr file is the one opened when the rewrite started, which the base
    /// does not cover: it stays.
    pub fn mark_rewritten_incrs_as_history(&mut self, keep_last: bool) {
        let keep = usize::from(keep_last && !self.incr.is_empty());
        let moved: Vec<AofInfo> = self.incr.drain(..self.incr.len() - keep).collect();
        // Redis walks from the tail and puts each at the head: the history
        // list ends up in sequence order, before the older history.
        for mut info in moved.into_iter().rev() {
            info.kind = FileType::History;
            self.history.insert(0, info);
        }
    }

    /// A finished rewrite, as `backgroundRewriteDoneHandler` changes the
    /// manifest: the new base, and the incr files it covers made history.
    /// Returns the new base's name; the caller renames its temp file to it,
    /// then persists the manifest, then deletes `take_history()`'s files.
    pub fn switch_base_after_rewrite(&mut self, appendfilename: &str, rdb_preamble: bool, aof_on: bool) -> Vec<u8> {
        let name = self.new_base(appendfilename, rdb_preamble).name.clone();
        self.mark_rewritten_incrs_as_history(aof_on);
        name
    }

    /// Removes the history files from the manifest and returns them, to be
    /// deleted once the manifest without them is persisted
    /// (`aofDelHistoryFiles`, which logs "Removing the history file %s in
    /// the background" for each).
    pub fn take_history(&mut self) -> Vec<AofInfo> {
        std::mem::take(&mut self.history)
    }
}

/// Reads `<aof_dir>/<appendfilename>.manifest`. `Ok(None)` when the
/// directory or the manifest does not exist (a fresh start or a pre-7.0
/// layout), as `aofLoadManifestFromDisk`.
pub fn load_manifest(aof_dir: &Path, appendfilename: &str) -> Result<Option<Manifest>, LoadManifestError> {
    if !aof_dir.is_dir() {
        return Ok(None);
    }
    let path = aof_dir.join(manifest_name(appendfilename));
    if !path.exists() {
        return Ok(None);
    }
    let data = std::fs::read(&path).map_err(|e| LoadManifestError::Open(path.to_string_lossy().into_owned(), e))?;
    Manifest::parse(&data).map(Some).map_err(LoadManifestError::Invalid)
}

#[derive(Debug)]
pub enum LoadManifestError {
    /// "Fatal error: can't open the AOF manifest file %s for reading: %s"
    Open(String, io::Error),
    Invalid(ManifestError),
}

impl LoadManifestError {
    pub fn redis_log_lines(&self) -> Vec<String> {
        match self {
            LoadManifestError::Open(path, e) => vec![format!("Fatal error: can't open the AOF manifest file {} for reading: {}", path, strerror(e))],
            LoadManifestError::Invalid(m) => m.redis_log_lines(),
        }
    }
}

impl std::fmt::Display for LoadManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadManifestError::Open(path, e) => write!(f, "can't open the AOF manifest file {}: {}", path, e),
            LoadManifestError::Invalid(m) => m.fmt(f),
        }
    }
}

impl std::error::Error for LoadManifestError {}

/// Writes the manifest so that a crash leaves the old one or the new one,
/// never a mix (`writeAofManifestFile`): `temp-<name>.manifest`, fsync,
/// rename over `<name>.manifest`, fsync of the directory (new AOF files may
/// have appeared in it too). Errors carry Redis's log line.
///
/// Not `writer::rename_durably`: that one ignores a failed directory fsync
/// and keeps the replaced file open for the caller, where Redis treats the
/// fsync failure as a failed persist and a manifest is a few hundred bytes.
pub fn persist_manifest(aof_dir: &Path, appendfilename: &str, manifest: &Manifest) -> Result<(), PersistError> {
    let name = manifest_name(appendfilename);
    let tmp_name = temp_manifest_name(appendfilename);
    let path = aof_dir.join(&name);
    let tmp_path = aof_dir.join(&tmp_name);
    let fail = |line: String| Err(PersistError { log_line: line });
    let mut f = match OpenOptions::new().write(true).create(true).truncate(true).open(&tmp_path) {
        Ok(f) => f,
        Err(e) => return fail(format!("Can't open the AOF manifest file {}: {}", tmp_name, strerror(&e))),
    };
    if let Err(e) = f.write_all(&manifest.to_bytes()) {
        return fail(format!("Error trying to write the temporary AOF manifest file {}: {}", tmp_name, strerror(&e)));
    }
    if let Err(e) = f.sync_all() {
        return fail(format!("Fail to fsync the temp AOF file {}: {}.", tmp_name, strerror(&e)));
    }
    drop(f);
    if let Err(e) = std::fs::rename(&tmp_path, &path) {
        return fail(format!("Error trying to rename the temporary AOF manifest file {} into {}: {}", tmp_name, name, strerror(&e)));
    }
    if let Err(e) = File::open(aof_dir).and_then(|d| d.sync_all()) {
        return fail(format!("Fail to fsync AOF directory {}: {}.", path.display(), strerror(&e)));
    }
    Ok(())
}

/// A failed manifest write, with the line Redis logs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistError {
    pub log_line: String,
}

impl std::fmt::Display for PersistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.log_line)
    }
}

impl std::error::Error for PersistError {}

/// Whether `dir` holds a pre-7.0 single AOF that Redis 7.0 moves into the
/// AOF directory at start-up (`loadAppendOnlyFiles`): `dir/<appendfilename>`
/// exists and the AOF directory is missing, or its manifest lists nothing,
/// or it lists only that file as base and the move did not happen yet (a
/// crash between writing the manifest and the rename).
pub fn needs_upgrade(dir: &Path, appenddirname: &str, appendfilename: &str, manifest: &Manifest) -> bool {
    if !dir.join(appendfilename).is_file() {
        return false;
    }
    let aof_dir = dir.join(appenddirname);
    !aof_dir.is_dir()
        || (manifest.base.is_none() && manifest.incr.is_empty())
        || (manifest.incr.is_empty() && manifest.base.as_ref().is_some_and(|b| b.name == appendfilename.as_bytes()) && !aof_dir.join(appendfilename).is_file())
}

/// The manifest Redis 7.0 writes when it adopts an old `appendonly.aof`:
/// the file itself, unrenamed, as base 1 (`aofUpgradePrepare`).
pub fn upgraded_manifest(appendfilename: &str) -> Manifest {
    Manifest {
        base: Some(AofInfo { name: appendfilename.as_bytes().to_vec(), seq: 1, kind: FileType::Base }),
        history: Vec::new(),
        incr: Vec::new(),
        curr_base_seq: 1,
        curr_incr_seq: 0,
    }
}

/// Does the upgrade as Redis 7.0 does, in its crash-safe order: create the
/// AOF directory, persist the manifest naming the old file as base, then
/// move the old file in (a crash in between is retried at the next start,
/// see `needs_upgrade`). Returns the new manifest and the line Redis logs.
pub fn upgrade_old_style(dir: &Path, appenddirname: &str, appendfilename: &str) -> Result<(Manifest, String), PersistError> {
    let aof_dir = dir.join(appenddirname);
    if let Err(e) = std::fs::create_dir_all(&aof_dir) {
        return Err(PersistError { log_line: format!("Can't open or create append-only dir {}: {}", appenddirname, strerror(&e)) });
    }
    let manifest = upgraded_manifest(appendfilename);
    persist_manifest(&aof_dir, appendfilename, &manifest)?;
    if let Err(e) = std::fs::rename(dir.join(appendfilename), aof_dir.join(appendfilename)) {
        return Err(PersistError {
            log_line: format!("Error trying to move the old AOF file {} into dir {}: {}", appendfilename, appenddirname, strerror(&e)),
        });
    }
    let line = format!("Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).", appendfilename, appenddirname);
    Ok((manifest, line))
}

/// `strerror(errno)` as Redis prints it: std's text without " (os error N)".
pub(crate) fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn trim<'a>(mut s: &'a [u8], set: &[u8]) -> &'a [u8] {
    while let [first, rest @ ..] = s {
        if !set.contains(first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !set.contains(last) {
            break;
        }
        s = rest;
    }
    s
}

/// C's isspace in the "C" locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `sdsneedsrepr`: a name with any of these is written quoted.
fn needs_repr(c: u8) -> bool {
    matches!(c, b'\\' | b'"' | b'\n' | b'\r' | b'\t' | 0x07 | 0x08) || !(0x20..0x7f).contains(&c) || is_space(c)
}

/// `sdssplitargs` (the protocol's inline-command splitter is the same
/// function): `None` on unbalanced quotes or text glued to a closing quote.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = crate::protocol::Args::new();
    if !crate::protocol::parser::split_args(line, &mut args) {
        return None;
    }
    Some((0..args.len()).map(|i| args.get(line, i).to_vec()).collect())
}

/// `atoll`/`strtoll`: blanks, a sign, digits up to the first other byte,
/// saturating as strtoll does on overflow.
pub(crate) fn c_strtoll(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
        let digit = (d - b'0') as i64;
        v = match v.checked_mul(10).and_then(|v| if negative { v.checked_sub(digit) } else { v.checked_add(digit) }) {
            Some(v) => v,
            None => return if negative { i64::MIN } else { i64::MAX },
        };
        i += 1;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ManifestError {
        Manifest::parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_what_redis_writes_and_writes_it_back_byte_for_byte() {
        let text = "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.1.incr.aof seq 1 type h\n\
                    file appendonly.aof.2.incr.aof seq 2 type h\nfile appendonly.aof.4.incr.aof seq 4 type i\n\
                    file appendonly.aof.5.incr.aof seq 5 type i\n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, b"appendonly.aof.2.base.rdb");
        assert_eq!(m.history.len(), 2);
        assert_eq!(m.incr.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!((m.curr_base_seq, m.curr_incr_seq), (2, 5));
        assert_eq!(m.to_bytes(), text.as_bytes());
    }

    /// Each reason and line as redis-check-aof 7.0.15 printed them for the
    /// same manifest.
    #[test]
    fn refuses_bad_manifests_with_redis_reasons() {
        assert_eq!(err(""), ManifestError { line: None, reason: ERR_EMPTY });
        assert_eq!(err("file a seq 1 type b"), ManifestError { line: None, reason: ERR_TOO_LONG });
        assert_eq!(err("\n"), ManifestError { line: Some((1, String::new())), reason: ERR_FORMAT });
        assert_eq!(err("file \"e.aof\"x seq 1 type b\n").line, Some((1, "file \"e.aof\"x seq 1 type b".into())));
        assert_eq!(err("file \"e.aof\"x seq 1 type b\n").reason, ERR_FORMAT);
        assert_eq!(err("file e.aof seq 0 type b\n").reason, ERR_FORMAT);
        assert_eq!(err("file e.aof seq 1 type b foo\n").reason, ERR_FORMAT);
        assert_eq!(err("file e.aof seq 1\n").reason, ERR_FORMAT);
        assert_eq!(err("file a\\b seq 1 type b\n").reason, ERR_PATH);
        assert_eq!(err("file d/a seq 1 type b\n").reason, ERR_PATH);
        assert_eq!(err("file e.aof seq 1 type x\n").reason, ERR_UNKNOWN_TYPE);
        let dup = err("file e.aof seq 1 type b\nfile e.aof seq 2 type b\n");
        assert_eq!(dup, ManifestError { line: Some((2, "file e.aof seq 2 type b".into())), reason: ERR_DUPLICATE_BASE });
        assert_eq!(err("# c\nfile a seq 2 type i\nfile b seq 2 type i\n").line.unwrap().0, 3);
        assert_eq!(err("file a seq 2 type i\nfile b seq 1 type i\n").reason, ERR_NON_MONOTONIC);
        let long = format!("file {} seq 1 type b\n", "a".repeat(1100));
        assert_eq!(err(&long).reason, ERR_TOO_LONG);
        assert_eq!(
            err("\n").redis_log_lines(),
            vec!["\n*** FATAL AOF MANIFEST FILE ERROR ***\n", "Reading the manifest file, at line 1\n", ">>> ''\n", "Invalid AOF manifest file format\n"]
        );
    }

    #[test]
    fn accepts_what_redis_accepts() {
        // Only comments: an empty manifest, not an error.
        assert_eq!(Manifest::parse(b"# only comment\n").unwrap(), Manifest::default());
        // A comment line needs no newline; unknown pairs are skipped; keys
        // are case-insensitive; only the type's first letter counts.
        let m = Manifest::parse(b"FILE x seq 3 TYPE base foo bar\n# tail").unwrap();
        assert_eq!(m.base.unwrap(), AofInfo { name: b"x".to_vec(), seq: 3, kind: FileType::Base });
        let m = Manifest::parse(b"  file 'it''s' seq 1 type h  \r\n").err();
        assert!(m.is_some(), "a quote glued to a quote is refused");
        let m = Manifest::parse(b"file 'it\\'s' seq 7 type h\n").unwrap();
        assert_eq!(m.history[0].name, b"it's");
        // History files are not checked for order; '..' is a base name to Redis.
        assert!(Manifest::parse(b"file .. seq 9 type h\nfile b seq 1 type h\n").is_ok());
    }

    #[test]
    fn names_that_need_quoting_round_trip() {
        for name in [&b"a b"[..], b"q\"uote", b"back\\slash", b"tab\there", b"\x01bin\xff", b"nl\n"] {
            let mut m = Manifest::default();
            m.incr.push(AofInfo { name: name.to_vec(), seq: 1, kind: FileType::Incr });
            m.curr_incr_seq = 1;
            let bytes = m.to_bytes();
            assert_eq!(bytes[5], b'"', "{:?} not quoted", String::from_utf8_lossy(&bytes));
            let back = Manifest::parse(&bytes);
            if name.contains(&b'\\') {
                // Quoted or not, a backslash makes it a path to Redis.
                assert_eq!(back.unwrap_err().reason, ERR_PATH);
            } else {
                assert_eq!(back.unwrap(), m);
            }
        }
        let m = Manifest { base: Some(AofInfo { name: b"a b".to_vec(), seq: 1, kind: FileType::Base }), ..Default::default() };
        assert_eq!(m.to_bytes(), b"file \"a b\" seq 1 type b\n");
    }

    /// The sequence of changes Redis makes from a fresh start through two
    /// rewrites, with the manifests it wrote (seen in appendonlydir/).
    #[test]
    fn new_files_and_rewrites_follow_redis_numbering() {
        let mut m = Manifest::default();
        assert_eq!(m.new_base("appendonly.aof", true).name, b"appendonly.aof.1.base.rdb");
        assert_eq!(m.last_incr_or_new("appendonly.aof").name, b"appendonly.aof.1.incr.aof");
        assert_eq!(m.last_incr_or_new("appendonly.aof").name, b"appendonly.aof.1.incr.aof");
        // BGREWRITEAOF: a new incr at the start, the base switch at the end.
        assert_eq!(m.new_incr("appendonly.aof").name, b"appendonly.aof.2.incr.aof");
        let base = m.switch_base_after_rewrite("appendonly.aof", true, true);
        assert_eq!(base, b"appendonly.aof.2.base.rdb");
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.1.base.rdb seq 1 type h\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
        );
        // The order Redis logs "Removing the history file ..." in.
        let gone: Vec<_> = m.take_history().into_iter().map(|i| i.display_name()).collect();
        assert_eq!(gone, vec!["appendonly.aof.1.incr.aof", "appendonly.aof.1.base.rdb"]);
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n");
        // Two incr files left by a failed rewrite, then one that works with
        // AOF off: all incr files become history, the base is plain AOF.
        m.new_incr("appendonly.aof");
        m.switch_base_after_rewrite("appendonly.aof", false, false);
        assert!(m.incr.is_empty());
        assert_eq!(m.base.as_ref().unwrap().name, b"appendonly.aof.3.base.aof");
        let history: Vec<_> = m.history.iter().map(|i| i.display_name()).collect();
        assert_eq!(history, vec!["appendonly.aof.2.incr.aof", "appendonly.aof.3.incr.aof", "appendonly.aof.2.base.rdb"]);
    }

    #[test]
    fn persist_replaces_the_manifest_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("ringkv-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = Manifest::default();
        m.new_base("a.aof", true);
        persist_manifest(&dir, "a.aof", &m).unwrap();
        m.new_incr("a.aof");
        persist_manifest(&dir, "a.aof", &m).unwrap();
        assert_eq!(load_manifest(&dir, "a.aof").unwrap().unwrap(), m);
        assert!(!dir.join(temp_manifest_name("a.aof")).exists());
        assert!(load_manifest(&dir, "other.aof").unwrap().is_none());
        let missing = persist_manifest(&dir.join("nope"), "a.aof", &m).unwrap_err();
        assert_eq!(missing.log_line, "Can't open the AOF manifest file temp-a.aof.manifest: No such file or directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn strtoll_reads_like_c() {
        assert_eq!(c_strtoll(b"  42x"), 42);
        assert_eq!(c_strtoll(b"-7"), -7);
        assert_eq!(c_strtoll(b"abc"), 0);
        assert_eq!(c_strtoll(b"99999999999999999999"), i64::MAX);
        assert_eq!(c_strtoll(b"-99999999999999999999"), i64::MIN);
    }
}
