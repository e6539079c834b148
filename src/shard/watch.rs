//! WATCH on the shard that owns the key: (db, key) -> the clients watching
//! it, as Redis's per-db `watched_keys` dict. A watcher is the client's
//! shared `WatchCell` (one atomic word: an epoch and the "dirty" bit, Redis's
//! `CLIENT_DIRTY_CAS`) with the epoch it registered under; the client's own
//! shard reads the bit at EXEC. Whoever changes a watched key flips the bit,
//! on whatever shard it runs.
//!
//! Unregistering: the client's shard removes its registrations on shards it
//! owns or holds at that moment (EXEC holds every watched shard, so an EXEC
//! leaves nothing behind). Elsewhere (UNWATCH, DISCARD, RESET, a closed
//! connection with keys on other shards) the client bumps its epoch instead:
//! the registrations there become stale, are dropped when a touch finds them,
//! and the shard sweeps its stale ones on its next cron once told some were
//! left (`abandoned`, `sweep_if_abandoned`), so what a connection leaves
//! behind lives at most one cron period, and a table of live watches is not
//! scanned for nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::Db;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A client's WATCH state shared with the shards it watches keys on:
/// `epoch << 1 | dirty`.
#[derive(Debug, Default)]
pub struct WatchCell(AtomicU64);

impl WatchCell {
    /// Whether a watched key of the current epoch was touched.
    pub fn dirty(&self) -> bool {
        self.0.load(Ordering::Acquire) & 1 != 0
    }
    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.0.load(Ordering::Acquire) >> 1
    }
    /// Starts a new epoch, clean: every registration made before is stale.
    pub fn renew(&self) -> u64 {
        let next = self.epoch() + 1;
        self.0.store(next << 1, Ordering::Release);
        next
    }
    /// Flags the client dirty if `epoch` is still its epoch; false when the
    /// registration is stale.
    fn touch(&self, epoch: u64) -> bool {
        match self.0.compare_exchange(epoch << 1, epoch << 1 | 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(v) => v >> 1 == epoch,
        }
    }
    /// Flags the current epoch dirty (a watched key found expired by a
    /// watched EXEC's first round on another shard: `network::rounds`).
    pub fn flag(&self) {
        self.touch(self.epoch());
    }
    fn is_current(&self, epoch: u64) -> bool {
        self.epoch() == epoch
    }
}

/// One client watching one key.
#[derive(Debug)]
pub struct Watcher {
    pub cell: Arc<WatchCell>,
    pub epoch: u64,
    /// The key existed but had logically expired when WATCH ran (Redis's
    /// `watchedKey.expired`): its deletion is then no change.
    pub expired: bool,
}

/// The watched keys of one shard, per database.
#[derive(Default)]
pub struct WatchTable {
    dbs: Vec<HashMap<Box<[u8]>, Vec<Watcher>>>,
    /// Registrations in `dbs`: zero keeps every write to one branch.
    registrations: usize,
}

/// Registrations left stale on each shard since its last sweep: a hint
/// (shared by every server of the process, so in tests at worst one sweep
/// too many), bumped by a client that cannot reach the shard to unregister.
static ABANDONED: [AtomicUsize; 128] = [const { AtomicUsize::new(0) }; 128];

/// A registration on `shard` was left stale (see the module).
pub fn abandoned(shard: usize) {
    ABANDONED[shard].fetch_add(1, Ordering::Relaxed);
}

/// Whether `key` exists in `db` with a TTL that has passed (Redis's `keyIsExpired`).
pub fn key_is_expired(db: &Db, key: &[u8], now_ms: i64) -> bool {
    db.map.get(key).is_some_and(|e| e.expire_at_ms >= 0 && e.expire_at_ms <= now_ms)
}

impl WatchTable {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.registrations == 0
    }

    pub fn len(&self) -> usize {
        self.registrations
    }

    pub fn register(&mut self, db: usize, key: &[u8], watcher: Watcher) {
        if self.dbs.len() <= db {
            self.dbs.resize_with(db + 1, Default::default);
        }
        self.dbs[db].entry(key.into()).or_default().push(watcher);
        self.registrations += 1;
    }

    /// Removes `cell`'s registration of (db, key), if any.
    pub fn unregister(&mut self, db: usize, key: &[u8], cell: &Arc<WatchCell>) {
        let Some(map) = self.dbs.get_mut(db) else { return };
        let Some(list) = map.get_mut(key) else { return };
        let before = list.len();
        list.retain(|w| !Arc::ptr_eq(&w.cell, cell));
        self.registrations -= before - list.len();
        if list.is_empty() {
            map.remove(key);
        }
    }

    /// The current registration of `cell` for (db, key).
    pub fn find(&self, db: usize, key: &[u8], cell: &Arc<WatchCell>, epoch: u64) -> Option<&Watcher> {
        self.dbs.get(db)?.get(key)?.iter().find(|w| Arc::ptr_eq(&w.cell, cell) && w.epoch == epoch)
    }

    /// `key` of `db` was changed (Redis's `touchWatchedKey`); `exists` is
    /// whether it exists now. Every current watcher is flagged dirty and its
    /// registration dropped (nothing more to learn from it), except one
    /// that watched the key already expired and sees it deleted: no logical
    /// change, it only forgets the key was expired.
    pub fn touch(&mut self, db: usize, key: &[u8], exists: bool) {
        let Some(map) = self.dbs.get_mut(db) else { return };
        let Some(list) = map.get_mut(key) else { return };
        let before = list.len();
        list.retain_mut(|w| {
            if !w.cell.is_current(w.epoch) {
                return false;
            }
            if w.expired && !exists {
                w.expired = false;
                return true;
            }
            w.cell.touch(w.epoch);
            false
        });
        self.registrations -= before - list.len();
        if list.is_empty() {
            map.remove(key);
        }
    }

    /// Every key of database `db` is about to be replaced by `replaced_with`'s
    /// (SWAPDB) or emptied (FLUSHDB/FLUSHALL: None), as Redis 7.0's
    /// `touchAllWatchedKeysInDb`: watched keys that exist in either are
    /// touched, except where the change is from an expired key to no key or
    /// to another expired key, or from no key to an expired one.
    pub fn touch_all(&mut self, db: usize, emptied: &Db, replaced_with: Option<&Db>, now_ms: i64) {
        let Some(map) = self.dbs.get_mut(db) else { return };
        let mut removed = 0;
        map.retain(|key, list| {
            let exists_in_emptied = emptied.map.find(key).is_some();
            let exists_in_replacement = replaced_with.is_some_and(|r| r.map.find(key).is_some());
            if !exists_in_emptied && !exists_in_replacement {
                return true;
            }
            let replacement_expired = replaced_with.is_some_and(|r| key_is_expired(r, key, now_ms));
            let before = list.len();
            list.retain_mut(|w| {
                if !w.cell.is_current(w.epoch) {
                    return false;
                }
                if w.expired {
                    if !exists_in_replacement {
                        // An expired key deleted: no logical change.
                        w.expired = false;
                        return true;
                    }
                    if replacement_expired {
                        // Expired before, expired after.
                        return true;
                    }
                } else if !exists_in_emptied && replacement_expired {
                    // No key replaced by an expired one.
                    w.expired = true;
                    return true;
                }
                w.cell.touch(w.epoch);
                false
            });
            removed += before - list.len();
            !list.is_empty()
        });
        self.registrations -= removed;
    }

    /// On cron: sweeps when some registration was left stale here.
    pub fn sweep_if_abandoned(&mut self, shard: usize) {
        if ABANDONED[shard].load(Ordering::Relaxed) > 0 && ABANDONED[shard].swap(0, Ordering::Relaxed) > 0 {
            self.sweep();
        }
    }

    /// Drops the registrations whose client has moved to a new epoch
    /// (unwatched, or gone).
    pub fn sweep(&mut self) {
        let mut removed = 0;
        for map in &mut self.dbs {
            map.retain(|_, list| {
                let before = list.len();
                list.retain(|w| w.cell.is_current(w.epoch));
                removed += before - list.len();
                !list.is_empty()
            });
        }
        self.registrations -= removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Value;

    fn watcher(cell: &Arc<WatchCell>, expired: bool) -> Watcher {
        Watcher { cell: cell.clone(), epoch: cell.epoch(), expired }
    }

    #[test]
    fn touch_flags_current_watchers_only() {
        let mut t = WatchTable::default();
        let (a, b) = (Arc::new(WatchCell::default()), Arc::new(WatchCell::default()));
        t.register(0, b"k", watcher(&a, false));
        t.register(0, b"k", watcher(&b, false));
        b.renew();
        t.touch(1, b"k", true);
        assert!(!a.dirty());
        t.touch(0, b"k", true);
        assert!(a.dirty());
        assert!(!b.dirty(), "a stale registration does not flag the new epoch");
        assert!(t.is_empty());
    }

    #[test]
    fn deleting_a_key_watched_expired_is_no_change() {
        let mut t = WatchTable::default();
        let a = Arc::new(WatchCell::default());
        t.register(0, b"k", watcher(&a, true));
        t.touch(0, b"k", false);
        assert!(!a.dirty());
        assert!(!t.find(0, b"k", &a, a.epoch()).unwrap().expired);
        t.touch(0, b"k", true);
        assert!(a.dirty());
    }

    #[test]
    fn flush_and_swap_rules() {
        let now = 1000;
        let mut live = Db::new();
        live.set(b"k", Value::from_bytes(b"v"), now, false);
        let mut stale = Db::new();
        stale.set(b"k", Value::from_bytes(b"v"), now, false);
        stale.set_expire(b"k", now - 1);
        let empty = Db::new();
        let cases: &[(bool, &Db, Option<&Db>, bool)] = &[
            // watched expired?, emptied, replaced with, dirty after
            (false, &live, None, true),
            (false, &empty, None, false),
            (true, &stale, None, false),
            (false, &empty, Some(&live), true),
            (true, &stale, Some(&empty), false),
            (false, &empty, Some(&stale), false),
            (true, &stale, Some(&stale), false),
            (true, &stale, Some(&live), true),
        ];
        for (i, &(expired, emptied, replaced, dirty)) in cases.iter().enumerate() {
            let mut t = WatchTable::default();
            let a = Arc::new(WatchCell::default());
            t.register(0, b"k", watcher(&a, expired));
            t.touch_all(0, emptied, replaced, now);
            assert_eq!(a.dirty(), dirty, "case {i}");
        }
    }

    #[test]
    fn sweep_drops_stale_registrations() {
        let mut t = WatchTable::default();
        let a = Arc::new(WatchCell::default());
        t.register(3, b"k", watcher(&a, false));
        t.register(3, b"j", watcher(&a, false));
        a.renew();
        t.register(3, b"k", watcher(&a, false));
        t.sweep();
        assert_eq!(t.len(), 1);
        t.unregister(3, b"k", &a);
        assert!(t.is_empty());
    }

    #[test]
    fn sweeps_on_cron_only_when_told() {
        // Shard 77: no other test uses it, the hint is process-wide.
        let mut t = WatchTable::default();
        let a = Arc::new(WatchCell::default());
        t.register(0, b"k", watcher(&a, false));
        a.renew();
        t.sweep_if_abandoned(77);
        assert_eq!(t.len(), 1, "nothing was reported abandoned");
        abandoned(77);
        t.sweep_if_abandoned(77);
        assert!(t.is_empty());
    }
}
