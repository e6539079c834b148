//! SLOWLOG entries, kept per shard, merged by id when read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slowlog ids are global so that merged entries keep Redis's ordering.
pub static NEXT_SLOWLOG_ID: AtomicU64 = AtomicU64::new(0);

/// Redis keeps at most 32 arguments, each at most 128 bytes.
pub const SLOWLOG_ENTRY_MAX_ARGC: usize = 32;
pub const SLOWLOG_ENTRY_MAX_STRING: usize = 128;

#[derive(Clone, Debug)]
pub struct SlowLogEntry {
    pub id: u64,
    pub time_sec: i64,
    pub duration_usec: u64,
    pub args: Vec<Vec<u8>>,
    pub peer: Vec<u8>,
    pub name: Vec<u8>,
}

#[derive(Default)]
pub struct SlowLog {
    pub entries: VecDeque<SlowLogEntry>,
}

impl SlowLog {
    pub fn push(&mut self, args: &[&[u8]], duration_usec: u64, peer: &[u8], name: &[u8], max_len: usize) {
        let argc = args.len().min(SLOWLOG_ENTRY_MAX_ARGC);
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(argc);
        for (i, a) in args.iter().take(argc).enumerate() {
            if argc < args.len() && i == argc - 1 {
                kept.push(format!("... ({} more arguments)", args.len() - argc + 1).into_bytes());
            } else if a.len() > SLOWLOG_ENTRY_MAX_STRING {
                let mut v = a[..SLOWLOG_ENTRY_MAX_STRING].to_vec();
                v.extend_from_slice(format!("... ({} more bytes)", a.len() - SLOWLOG_ENTRY_MAX_STRING).as_bytes());
                kept.push(v);
            } else {
                kept.push(a.to_vec());
            }
        }
        let id = NEXT_SLOWLOG_ID.fetch_add(1, Ordering::Relaxed);
        let time_sec = crate::util::unix_ms() / 1000;
        self.entries.push_front(SlowLogEntry { id, time_sec, duration_usec, args: kept, peer: peer.to_vec(), name: name.to_vec() });
        while self.entries.len() > max_len {
            self.entries.pop_back();
        }
    }
}
