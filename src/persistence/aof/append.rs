//! The bytes Redis 7.0 appends to an incr file for one command
//! (`feedAppendOnlyFile`): an optional `#TS:<unix>` annotation when the
//! second changed (aof-timestamp-enabled), a `SELECT` when the command's db
//! differs from the last one appended, then the command as a RESP array of
//! bulk strings, arguments as the command propagated them.

/// `*<argc>\r\n` then `$<len>\r\n<arg>\r\n` per argument
/// (`catAppendOnlyGenericCommand`).
pub fn append_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, argv: &[A]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Commands as `append_command` writes them, one after another (tests).
#[cfg(test)]
pub fn commands_bytes(cmds: &[&[&str]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        append_command(&mut out, c);
    }
    out
}

/// `#TS:<unix seconds>\r\n` (`genAofTimestampAnnotationIfNeeded`).
pub fn timestamp_annotation(out: &mut Vec<u8>, unix_secs: i64) {
    out.extend_from_slice(b"#TS:");
    out.extend_from_slice(itoa::Buffer::new().format(unix_secs).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What the appender remembers between commands of one incr file.
#[derive(Debug, Default, Clone)]
pub struct AppendState {
    /// The db of the last command appended; `None` at the start of a file
    /// (Redis sets `aof_selected_db = -1` when it opens a new incr file, so
    /// every incr file starts with a SELECT).
    selected_db: Option<usize>,
    /// The second of the last `#TS:` annotation.
    annotated_secs: i64,
}

impl AppendState {
    /// A state for a freshly opened incr file.
    pub fn new() -> AppendState {
        AppendState::default()
    }

    /// Forgets the selected db: the next command gets a SELECT (a new incr
    /// file, or after anything else was written to it).
    pub fn reset_db(&mut self) {
        self.selected_db = None;
    }

    /// Appends `argv` as run in `db` to `out`. `now_secs` is `Some(unix
    /// seconds)` when aof-timestamp-enabled is on: an annotation is written
    /// when the second is later than the last one annotated.
    pub fn feed<A: AsRef<[u8]>>(&mut self, out: &mut Vec<u8>, db: usize, argv: &[A], now_secs: Option<i64>) {
        self.feed_marked(out, db, argv, now_secs, |_, _| ());
    }

    /// `feed`, calling `mark` with where in `out` an annotation or a SELECT
    /// went before the command, and which, in order.
    #[inline]
    pub fn feed_marked<A: AsRef<[u8]>>(&mut self, out: &mut Vec<u8>, db: usize, argv: &[A], now_secs: Option<i64>, mut mark: impl FnMut(usize, Mark)) {
        if let Some(now) = now_secs {
            if self.annotated_secs < now {
                self.annotated_secs = now;
                mark(out.len(), Mark::Stamp(now));
                timestamp_annotation(out, now);
            }
        }
        if self.selected_db != Some(db) {
            mark(out.len(), Mark::Select(db));
            append_select(out, db);
            self.selected_db = Some(db);
        }
        append_command(out, argv);
    }
}

/// A line the appender writes of its own before a command: what the merge
/// of the shards' streams (`persistence::lanes`) may leave out when the
/// merged output has it already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `SELECT <db>`.
    Select(usize),
    /// `#TS:<unix seconds>`.
    Stamp(i64),
}

impl Mark {
    /// Its length as written (`append_select`, `timestamp_annotation`).
    pub fn written_len(self) -> usize {
        match self {
            Mark::Select(db) => select_len(db),
            Mark::Stamp(secs) => 4 + itoa::Buffer::new().format(secs).len() + 2,
        }
    }
}

/// `SELECT <db>` as `append_command` writes it.
pub fn append_select(out: &mut Vec<u8>, db: usize) {
    append_command(out, &[&b"SELECT"[..], itoa::Buffer::new().format(db).as_bytes()]);
}

/// The length of `SELECT <db>` as `append_select` writes it:
/// `*2\r\n$6\r\nSELECT\r\n$<digits>\r\n<db>\r\n`.
pub fn select_len(db: usize) -> usize {
    let digits = itoa::Buffer::new().format(db).len();
    4 + 12 + 1 + itoa::Buffer::new().format(digits).len() + 2 + digits + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_len_is_the_written_length() {
        for db in [0, 9, 10, 15, 99, 100, 12345, 1234567890] {
            let mut out = Vec::new();
            append_select(&mut out, db);
            assert_eq!(out.len(), select_len(db), "{db}");
            assert_eq!(Mark::Select(db).written_len(), select_len(db));
        }
        for secs in [0, 7, 1796547123, -1, i64::MAX] {
            let mut out = Vec::new();
            timestamp_annotation(&mut out, secs);
            assert_eq!(out.len(), Mark::Stamp(secs).written_len(), "{secs}");
        }
    }

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        append_command(&mut out, &["set", "k", ""]);
        assert_eq!(out, b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$0\r\n\r\n");
        out.clear();
        append_command(&mut out, &[b"a\r\nb".to_vec()]);
        assert_eq!(out, b"*1\r\n$4\r\na\r\nb\r\n");
    }

    /// The bytes of an incr file redis-server 7.0.15 wrote with
    /// `--aof-timestamp-enabled yes` for SET a 1 at second T, then SET b 2
    /// in db 3 a second later, then SET c 3 in db 3 in the same second.
    #[test]
    fn select_and_timestamps_only_when_they_change() {
        let mut s = AppendState::new();
        let mut out = Vec::new();
        s.feed(&mut out, 0, &["set", "a", "1"], Some(1796547123));
        s.feed(&mut out, 3, &["set", "b", "2"], Some(1796547124));
        s.feed(&mut out, 3, &["set", "c", "3"], Some(1796547124));
        let expect = "#TS:1796547123\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n\
                      #TS:1796547124\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*3\r\n$3\r\nset\r\n$1\r\nb\r\n$1\r\n2\r\n\
                      *3\r\n$3\r\nset\r\n$1\r\nc\r\n$1\r\n3\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), expect);
        // Without timestamps, and after a reset (new incr file): SELECT again.
        let mut out = Vec::new();
        s.reset_db();
        s.feed(&mut out, 3, &["del", "c"], None);
        assert_eq!(out, b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\ndel\r\n$1\r\nc\r\n");
        let mut out = Vec::new();
        s.feed(&mut out, 12, &["del", "c"], None);
        assert!(out.starts_with(b"*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n"));
    }
}
