//! `oom-score-adj` and `oom-score-adj-values`: the Linux OOM killer's bias
//! for this process (`/proc/self/oom_score_adj`), as Redis's
//! `setOOMScoreAdj`. Three classes, one value each: a master, a replica
//! (REPLICAOF set) and a background child (BGSAVE, BGREWRITEAOF), so that
//! the kernel kills a snapshot child before the server under memory
//! pressure. `yes`/`relative` adds the class's value to the score the
//! process had when ringkv first took control of it (the base); `absolute`
//! writes the value itself; both are clamped to -1000..1000. Turned back
//! to `no`, the base is written back.
//!
//! The state (whether ringkv adjusted the score, and the base) is two
//! atomics, not a lock: the forked child reads them, and a lock another
//! thread held at fork() would stay held in the child for ever.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::Config;

/// Redis's `CONFIG_OOM_MASTER`, `CONFIG_OOM_REPLICA`, `CONFIG_OOM_BGCHILD`:
/// the index of the class's value in `oom-score-adj-values`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessClass {
    Master = 0,
    Replica = 1,
    BackgroundChild = 2,
}

impl ProcessClass {
    /// The server's own class: a replica while REPLICAOF is set.
    pub fn of_server(replica: bool) -> ProcessClass {
        if replica {
            ProcessClass::Replica
        } else {
            ProcessClass::Master
        }
    }
}

const PATH: &str = "/proc/self/oom_score_adj";

/// The error CONFIG SET gives when the score cannot be written (Redis's).
pub const SET_FAILED: &str = "Failed to set current oom_score_adj. Check server logs.";

static ADJUSTED: AtomicBool = AtomicBool::new(false);
static BASE: AtomicI64 = AtomicI64::new(0);

/// How `oom-score-adj` reads: `None` for `no`, else whether `absolute`.
fn mode(c: &Config) -> Option<bool> {
    match c.others.get("oom-score-adj").map(String::as_str) {
        Some("yes") => Some(false),
        Some("absolute") => Some(true),
        _ => None,
    }
}

fn class_value(c: &Config, class: ProcessClass) -> i64 {
    c.others.get("oom-score-adj-values").and_then(|v| v.split(' ').nth(class as usize)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The score to write for `class` under `c`, from `base`.
pub fn score(c: &Config, class: ProcessClass, base: i64) -> Option<i64> {
    let absolute = mode(c)?;
    let v = class_value(c, class) + if absolute { 0 } else { base };
    Some(v.clamp(-1000, 1000))
}

/// Sets this process's score for `class` as `c` says (Redis's
/// `setOOMScoreAdj`): nothing while `oom-score-adj` is `no` and ringkv never
/// adjusted it; the base back when it is turned off. Logs and returns the
/// error when `/proc` refuses (a lowered score needs CAP_SYS_RESOURCE).
pub fn apply(c: &Config, class: ProcessClass) -> std::io::Result<()> {
    let value = if mode(c).is_some() {
        if !ADJUSTED.load(Ordering::Acquire) {
            // The score before ringkv took control, to add to and to restore.
            let base = match std::fs::read_to_string(PATH) {
                Ok(s) => s.trim().parse().unwrap_or(0),
                Err(e) => {
                    crate::warning!("Unable to read oom_score_adj: {}", e);
                    return Err(e);
                }
            };
            BASE.store(base, Ordering::Relaxed);
            ADJUSTED.store(true, Ordering::Release);
        }
        score(c, class, BASE.load(Ordering::Relaxed)).expect("mode is set")
    } else if ADJUSTED.swap(false, Ordering::AcqRel) {
        BASE.load(Ordering::Relaxed)
    } else {
        return Ok(());
    };
    std::fs::write(PATH, format!("{value}\n")).inspect_err(|e| crate::warning!("Unable to write oom_score_adj: {}", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_adds_to_the_base_absolute_does_not_both_clamped() {
        let mut c = Config::default();
        assert_eq!(score(&c, ProcessClass::Master, 5), None);
        c.others.insert("oom-score-adj".into(), "yes".into());
        c.others.insert("oom-score-adj-values".into(), "10 20 990".into());
        assert_eq!(score(&c, ProcessClass::Master, 5), Some(15));
        assert_eq!(score(&c, ProcessClass::Replica, 5), Some(25));
        assert_eq!(score(&c, ProcessClass::BackgroundChild, 50), Some(1000));
        c.others.insert("oom-score-adj".into(), "absolute".into());
        c.others.insert("oom-score-adj-values".into(), "-2000 20 30".into());
        assert_eq!(score(&c, ProcessClass::Master, 5), Some(-1000));
        assert_eq!(score(&c, ProcessClass::BackgroundChild, 5), Some(30));
    }
}
