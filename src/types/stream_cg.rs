//! A stream's consumer groups (Redis's `streamCG`): the last delivered
//! ID, the entries read counter, the pending entries list (PEL) and the
//! consumers, each with its own PEL. A pending entry names its consumer;
//! the consumer's PEL holds the same IDs, so both sides stay in step
//! through these methods only.

use std::collections::{BTreeMap, BTreeSet};

use super::stream::StreamId;

/// A delivered, not yet acknowledged entry (`streamNACK`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub delivery_time: i64,
    pub delivery_count: u64,
    pub consumer: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    pub seen_time: i64,
    /// 7.2's `active-time` (kept as loaded; 7.0 does not have it).
    pub active_time: i64,
    pub pel: BTreeSet<StreamId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub last_id: StreamId,
    /// `entries_read`; -1 when unknown (`SCG_INVALID_ENTRIES_READ`).
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Vec<u8>, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group { last_id, entries_read, pel: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// The consumer `name`, created when missing (`streamLookupConsumer`
    /// with create; the caller sets the seen time). Returns whether it was created.
    pub fn consumer_or_create(&mut self, name: &[u8], now: i64) -> (&mut Consumer, bool) {
        let mut created = false;
        let c = self.consumers.entry(name.to_vec()).or_insert_with(|| {
            created = true;
            Consumer { seen_time: now, active_time: -1, pel: BTreeSet::new() }
        });
        (c, created)
    }

    /// Deletes consumer `name` and its pending entries; how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Acknowledges `id`: whether it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(nack) = self.pel.remove(&id) else { return false };
        if let Some(c) = self.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Gives pending `id` to `consumer` (which exists).
    pub fn assign(&mut self, id: StreamId, consumer: &[u8]) {
        if let Some(nack) = self.pel.get_mut(&id) {
            if nack.consumer != consumer {
                let old = std::mem::replace(&mut nack.consumer, consumer.to_vec());
                if let Some(c) = self.consumers.get_mut(&old) {
                    c.pel.remove(&id);
                }
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Delivers `id` to `consumer` (XREADGROUP `>`): a new pending entry,
    /// or a pending one moved to this consumer with a fresh count.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now: i64) {
        match self.pel.get_mut(&id) {
            Some(nack) => {
                nack.delivery_time = now;
                nack.delivery_count = 1;
            }
            None => {
                self.pel.insert(id, Nack { delivery_time: now, delivery_count: 1, consumer: consumer.to_vec() });
            }
        }
        self.assign(id, consumer);
    }
}
